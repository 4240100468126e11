"""LlamaGen text-to-image on argen's engine: prompts -> T5 captions -> image tokens (the
next-token loop: static KV cache, per-row generators, CFG by batch doubling, forced tokens) ->
the VQ-16 decoder.

Guidance is the reference's (``autoregressive/models/generate.py``): the unconditional twin of a
row reads the model's ``uncond_embedding`` through the same caption mask as the row, and logits
mix as ``uncond + scale * (cond - uncond)`` before temperature, top-k and top-p. A negative prompt
replaces the twin's caption by its own (with its own mask). Defaults are ``sample_t2i.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from argen.engine.kv_cache import mark_static
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.errors import UsageError
from argen.modalities.image.janus.pipeline import check_forced, check_rows, make_generators
from argen.modalities.image.llamagen.vq import LlamaGenVQ
from argen.modalities.image.llamagen_t2i.config import matches
from argen.modalities.image.llamagen_t2i.load import load_folder
from argen.modalities.image.llamagen_t2i.model import LlamaGenT2I
from argen.modalities.image.llamagen_t2i.text_encoder import T5CaptionEncoder, left_pad
from argen.modalities.image.vq_grid import VQGrid

__all__ = ["LlamaGenT2IImage", "matches"]

# prompts -> (encoder states (B, 120, caption_dim), right-padded masks (B, 120))
CaptionFn = Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]]


class LlamaGenT2IImage(VQGrid):
    """A converted LlamaGen text-to-image folder (see :func:`load.convert_llamagen_t2i`)."""

    family = "llamagen_t2i"

    def __init__(self, model: LlamaGenT2I, vq: LlamaGenVQ, text_encoder: CaptionFn | None = None,
                 name: str = "llamagen-t2i", quantize: str = "none") -> None:
        self.model, self.vq, self.name, self.quantize = model, vq, name, quantize
        self._text_encoder = text_encoder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32,
                        text_encoder: CaptionFn | None = None, quantize: str = "none") -> "LlamaGenT2IImage":
        """The GPT in ``dtype`` on ``device``, the VQ in float32; ``text_encoder`` defaults to the
        folder's T5 (FLAN-T5-XL), opened from a local copy when first needed. ``quantize="int8"``:
        int8 weights in the GPT's blocks and head (the caption MLP runs once per prompt, kept)."""
        check_mode(quantize)
        model, vq, meta = load_folder(folder)
        quantize_weights(model.to(device, dtype).gpt, quantize)
        return cls(model, vq.to(device), text_encoder, meta.get("name") or Path(folder).name, quantize)

    @property
    def device(self) -> torch.device:
        return self.model.gpt.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The GPT's compute dtype."""
        return self.model.gpt.embed.weight.dtype

    @property
    def text_encoder(self) -> CaptionFn:
        if self._text_encoder is None:
            c = self.model.t2i
            self._text_encoder = T5CaptionEncoder(c.text_encoder, self.device, self.model.gpt.embed.weight.dtype,
                                                  c.caption_tokens)
        return self._text_encoder

    @property
    def defaults(self) -> SamplingConfig:
        """sample_t2i.py's defaults: CFG 7.5, top-k 1000, temperature 1, top-p 1."""
        return SamplingConfig(temperature=1.0, top_k=1000, cfg_scale=7.5)

    @property
    def image_size(self) -> int:
        return self.model.t2i.image_size

    @property
    def grid(self) -> int:
        return self.model.t2i.grid

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def max_prompt_tokens(self) -> int:
        """T5 tokens (end token included) a caption may have."""
        return self.model.t2i.caption_tokens

    # -- sampling
    def captions(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (left-padded captions (B, 120, caption_dim), valid (B, 120) bool)."""
        if any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise UsageError("the prompt is empty", hint="describe the image to generate, e.g. -p \"a red apple\"")
        return left_pad(*self.text_encoder(list(prompts)))

    def sample_tokens(self, prompts: Sequence[str], seeds: Sequence[int] | None = None,
                      sampling: SamplingConfig | None = None, negative_prompts: Sequence[str | None] | None = None,
                      forced: torch.Tensor | None = None, use_cache: bool = True, on_token=None,
                      compile: bool = False) -> torch.Tensor:
        """Image tokens (B, grid * grid) for ``prompts`` (B,); arguments as :meth:`JanusImage.sample_tokens`."""
        prompts = list(prompts)
        if not prompts:
            raise UsageError("no prompts given", hint="pass at least one prompt")
        check_rows(len(prompts), "negative prompts", negative_prompts)
        negative = None
        if negative_prompts is not None and any(negative_prompts):
            texts = [n if n else None for n in negative_prompts]
            caps, valid = self.captions([t or "x" for t in texts])
            negative = (caps, valid, torch.tensor([t is not None for t in texts]))
        return self.sample_tokens_from_captions(*self.captions(prompts), seeds=seeds, sampling=sampling,
                                                negative=negative, forced=forced, use_cache=use_cache,
                                                on_token=on_token, compile=compile)

    @torch.inference_mode()
    def sample_tokens_from_captions(self, captions: torch.Tensor, valid: torch.Tensor,
                                    seeds: Sequence[int] | None = None, sampling: SamplingConfig | None = None,
                                    negative: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                                    forced: torch.Tensor | None = None, use_cache: bool = True,
                                    on_token=None, compile: bool = False) -> torch.Tensor:
        """Image tokens (B, grid * grid) from left-padded captions (B, 120, caption_dim) and their
        valid masks (B, 120) (see :func:`text_encoder.left_pad`). ``negative``: (captions, valid,
        used (B,) bool): rows with ``used`` read those captions in their unconditional branch.
        ``compile``: the loop's --compile; the bound captions are then static inputs of the
        graph-captured step (the same tensors for every token of the batch)."""
        b = captions.shape[0]
        sampling = sampling or self.defaults
        check_rows(b, "seeds", seeds)
        if negative is not None and bool(negative[2].any()) and not sampling.guided:
            raise UsageError("a negative prompt needs classifier-free guidance",
                             hint="set --cfg to a value other than 1 (the default is 7.5)")
        forced = check_forced(forced, b, self.num_tokens, self.model.gpt.cfg.vocab_size)
        valid = valid.bool()
        if sampling.guided:
            null = self.model.uncond_embedding[None].expand(b, -1, -1).to(captions.device, captions.dtype)
            uncond, uncond_valid = null, valid
            if negative is not None:
                used = negative[2].to(captions.device)
                uncond = torch.where(used[:, None, None], negative[0].to(captions.dtype), null)
                uncond_valid = torch.where(used[:, None], negative[1].bool(), valid)
            captions, valid = torch.cat([captions, uncond]), torch.cat([valid, uncond_valid])
        bound = self.model.bind(captions, valid)
        ids = bound.prompts()
        if compile:
            mark_static(bound.prefix, bound.valid)
        rows = generate(bound, ids[:b], self.num_tokens, sampling, generators=make_generators(seeds, self.device),
                        use_cache=use_cache, compile=compile, on_token=on_token,
                        rules=token_rules(uncond_prompts=ids[b:] if sampling.guided else None, forced=forced))
        return torch.tensor(rows, dtype=torch.long)  # (B, L)
