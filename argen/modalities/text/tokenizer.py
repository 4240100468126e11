"""Text tokenizers: argen's character vocabulary, or a Hugging Face ``tokenizer.json``.

Both expose ``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size`` and
``eos_id`` (None when the vocabulary has no end-of-sequence token).
"""

from __future__ import annotations

import json
from pathlib import Path

from argen.errors import ArgenError


class CharTokenizer:
    """One id per character, in the order of ``chars``."""

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("character vocabulary has duplicates")
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}
        self.vocab_size = len(chars)
        self.eos_id = None

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise ArgenError(f"character {e.args[0]!r} is not in this model's vocabulary",
                             hint=f"the model knows {self.vocab_size} characters: {self.chars[:40]!r}...") from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"argen_tokenizer": "char", "chars": self.chars}, ensure_ascii=False))


class HFTokenizer:
    """A ``tokenizers`` tokenizer read from tokenizer.json (Llama, Qwen2, GPT-2 families)."""

    def __init__(self, path: Path, eos_id: int | None = None, bos_id: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.vocab_size = self.tok.get_vocab_size()
        self.eos_id = eos_id
        self.bos_id = bos_id

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)


def load_tokenizer(path: Path, eos_id: int | None = None, bos_id: int | None = None):
    """Open a tokenizer.json written by argen (character vocabulary) or by Hugging Face."""
    from argen.io.files import read_utf8

    path = Path(path)
    text = read_utf8(path, "tokenizer", hint="the model folder needs a valid tokenizer.json")
    try:
        head = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ArgenError(f"tokenizer {path} is not valid JSON ({str(e)[:160]})",
                         hint="the model folder needs a valid tokenizer.json") from None
    if not isinstance(head, dict):
        raise ArgenError(f"{path} is not a tokenizer (a JSON {type(head).__name__})",
                         hint="the model folder needs a valid tokenizer.json")
    if head.get("argen_tokenizer") == "char":
        if not isinstance(head.get("chars"), str) or not head["chars"]:
            raise ArgenError(f"{path}: 'chars' must be a non-empty string", hint="the tokenizer.json is corrupt")
        return CharTokenizer(head["chars"])
    try:
        return HFTokenizer(path, eos_id=eos_id, bos_id=bos_id)
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises bare Exceptions ("Model missing")
        raise ArgenError(f"{path} is not a tokenizer the tokenizers library can read ({str(e).splitlines()[0]})",
                         hint="the model folder needs a valid tokenizer.json") from None
