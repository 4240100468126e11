"""Captions as a fixed-length prefix of word ids: the conditioning of the bundled image and mesh
models (one id per word of a closed vocabulary, padded to the prefix length)."""

from __future__ import annotations

from argen.errors import UsageError


def word_prefix_ids(text: str, words: list[str], first_id: int, prefix_len: int, pad: int, example: str) -> list[int]:
    """``text``'s words as ids ``first_id + index in words``, padded with ``pad`` to ``prefix_len``.
    Unknown words (the error lists the vocabulary), an empty prompt or too many words are UsageErrors."""
    said = text.strip().lower().split()
    unknown = sorted({w for w in said if w not in words})
    if unknown:
        raise UsageError(f"unknown word(s) in the prompt: {', '.join(unknown)}", hint=f"this model knows: {' '.join(words)}")
    if not said:
        raise UsageError("the prompt is empty", hint=f"e.g. --prompt '{example}'")
    if len(said) > prefix_len:
        raise UsageError(f"the prompt has {len(said)} words; this model reads at most {prefix_len}",
                         hint=f"e.g. --prompt '{example}'")
    index = {w: first_id + i for i, w in enumerate(words)}
    return [index[w] for w in said] + [pad] * (prefix_len - len(said))
