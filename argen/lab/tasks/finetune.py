"""The second stage of a codec's training (``data.decoder_finetune``): load a trained codec and
freeze its codes, so only its decoder trains on."""

from __future__ import annotations

from typing import Callable

from argen.errors import UsageError


def load_for_decoder_finetune(base: str, load: Callable, overrides: dict, what: str):
    """The codec in folder ``base`` (read by ``load``, which gives (model, meta) and a clear
    error for a missing or tampered folder), codes frozen. A ``model:`` key of the recipe that
    differs from the codec's config is a UsageError: the architecture stays as it is."""
    model, _ = load(base)
    theirs = model.cfg.to_dict()
    for key, value in overrides.items():
        if theirs.get(key) != value:  # YAML lists compare equal to the config's lists
            raise UsageError(f"model.{key} is {value!r} but the {what} in {base} has {theirs.get(key)!r}",
                             hint=f"a decoder fine-tune keeps the {what}'s architecture: "
                                  "leave model: {} or copy its config")
    return model.freeze_codes()


def card_line(base: str | None, kept: int | None, total: int, items: str) -> str:
    """The model card's line for a decoder fine-tune of ``base`` (empty for a first stage): how
    many of ``total`` validation ``items`` kept their codes."""
    if not base:
        return ""
    return (f"- Decoder fine-tune of `{base}`: its encoder and codebooks are kept, so every input\n"
            f"  keeps its codes ({kept} of {total} validation {items} checked).\n")
