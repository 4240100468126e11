"""Janus's text-to-image prompts: the chat (SFT) format, the image-start token, and the
unconditional twin that classifier-free guidance compares each prompt against.

Facts from deepseek-ai/Janus: ``generation_inference.py`` (and the README's Janus-Pro example)
builds a two-turn conversation (user: the prompt, assistant: empty) in the ``deepseek`` SFT format
with an empty system prompt, then appends ``<begin_of_image>``; ``janus/utils/conversation.py``
renders that format as ``"<|User|>: " + prompt.strip() + "\\n\\n" + "<|Assistant|>:"``; the
tokenizer adds its BOS. The unconditional row is the same ids with every token but the first
(BOS) and the last (image start) replaced by the pad token (``tokens[i, 1:-1] = pad_id``);
transformers 5 ``JanusForConditionalGeneration.generate(generation_mode="image")`` does the same
by masking every id that is neither BOS nor ``boi_token_id``. A negative prompt replaces that
unconditional row by the negative prompt in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argen.errors import ArgenError, UsageError

USER, ASSISTANT, SEP = "<|User|>", "<|Assistant|>", "\n\n"
# token strings of the Janus tokenizer (processing_vlm.py: image_start_tag, pad_tag; the DeepSeek BOS)
BOS_TOKEN, PAD_TOKEN, BOI_TOKEN = "<｜begin▁of▁sentence｜>", "<｜▁pad▁｜>", "<begin_of_image>"


def chat_text(prompt: str) -> str:
    """The text the tokenizer reads for ``prompt`` (without BOS and the image-start token)."""
    return f"{USER}: {prompt.strip()}{SEP}{ASSISTANT}:"


@dataclass
class TokenIds:
    bos: int
    pad: int
    boi: int  # <begin_of_image>


def _first(*values: Any) -> int | None:
    for v in values:
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


class JanusPromptEncoder:
    """Prompts -> token ids of the conditional rows and of their unconditional twins."""

    def __init__(self, tokenizer, ids: TokenIds) -> None:
        self.tok = tokenizer  # a tokenizers.Tokenizer
        self.ids = ids

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], generation: dict[str, Any]) -> "JanusPromptEncoder":
        """Token ids as transformers' generate reads them (generation_config.json, then the text
        config), else looked up by their token strings in tokenizer.json."""
        from tokenizers import Tokenizer

        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ArgenError(f"{folder} has no tokenizer.json", hint="download the model's tokenizer files too")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception type
            raise ArgenError(f"{path} is not a readable tokenizer ({str(e)[:120]})",
                             hint="the file is corrupt; re-download it") from None
        text = config.get("text_config") or {}
        kwargs = generation.get("generation_kwargs") or {}
        bos = _first(generation.get("bos_token_id"), text.get("bos_token_id"), tok.token_to_id(BOS_TOKEN))
        pad = _first(generation.get("pad_token_id"), text.get("pad_token_id"), tok.token_to_id(PAD_TOKEN))
        boi = _first(kwargs.get("boi_token_id"), tok.token_to_id(BOI_TOKEN))
        missing = [name for name, v in (("bos", bos), ("pad", pad), ("image-start", boi)) if v is None]
        if missing:
            raise ArgenError(f"{folder}: no {', '.join(missing)} token id in generation_config.json, config.json "
                             "or tokenizer.json", hint="the folder is not a complete Janus download")
        return cls(tok, TokenIds(bos, pad, boi))

    def encode(self, prompt: str) -> list[int]:
        """[BOS] + the chat text's tokens + [<begin_of_image>]."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise UsageError("the prompt is empty", hint="describe the image to generate, e.g. -p \"a red apple\"")
        return [self.ids.bos, *self.tok.encode(chat_text(prompt), add_special_tokens=False).ids, self.ids.boi]

    def unconditional(self, cond: list[int]) -> list[int]:
        """The reference's unconditional twin: BOS, pads, image start (as long as ``cond``)."""
        return [cond[0], *[self.ids.pad] * (len(cond) - 2), cond[-1]]
