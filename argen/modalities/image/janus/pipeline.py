"""Janus-Pro text-to-image on argen's engine: prompts -> image tokens (the next-token loop with
its static KV cache, per-row generators, CFG by batch doubling and forced tokens) -> VQ decoder.

Defaults are the reference's (deepseek-ai/Janus ``generation_inference.py`` and README: ``cfg_weight
= 5``, ``temperature = 1``, no top-k/top-p; 576 tokens, 384 px); guidance mixes
``uncond + cfg * (cond - uncond)`` before the temperature, as there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from argen.checkpoints.argen_format import read_json
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.errors import ArgenError, UsageError
from argen.modalities.image.janus.config import JanusSpec, janus_spec, matches
from argen.modalities.image.janus.load import build, read_weights
from argen.modalities.image.janus.model import JanusImageLM
from argen.modalities.image.janus.prompts import JanusPromptEncoder
from argen.modalities.image.llamagen.vq import LlamaGenVQ
from argen.modalities.image.vq_grid import VQGrid

__all__ = ["JanusImage", "matches"]


def check_rows(n: int, what: str, values: Sequence | None) -> None:
    if values is not None and len(values) != n:
        raise UsageError(f"{len(values)} {what} for {n} prompts", hint=f"give one {what[:-1]} per prompt")


def check_forced(forced: torch.Tensor | None, b: int, length: int, vocab: int) -> torch.Tensor | None:
    """``forced`` (B, L) long, -1 where the model samples, else a token id in range."""
    if forced is None:
        return None
    forced = torch.as_tensor(forced, dtype=torch.long)
    if tuple(forced.shape) != (b, length):
        raise UsageError(f"forced tokens have shape {tuple(forced.shape)}, expected ({b}, {length})",
                         hint="one row of image tokens per prompt, -1 where the model samples")
    if bool(((forced < -1) | (forced >= vocab)).any()):
        raise UsageError(f"forced tokens must be -1 or ids below {vocab}", hint="use the model's own VQ codes")
    return forced


def make_generators(seeds: Sequence[int] | None, device) -> list[torch.Generator] | None:
    """One generator per row, seeded by that row's seed: a row samples the same alone or in a batch."""
    if seeds is None:
        return None
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


class JanusImage(VQGrid):
    """A loaded Janus checkpoint's image-generation path (see :meth:`from_pretrained`)."""

    family = "janus"

    def __init__(self, model: JanusImageLM, vq: LlamaGenVQ, prompts: JanusPromptEncoder, spec: JanusSpec,
                 name: str = "janus", quantize: str = "none") -> None:
        self.model, self.vq, self.prompts, self.spec, self.name = model, vq, prompts, spec, name
        self.quantize = quantize

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, quantize: str = "none") -> "JanusImage":
        """Load a transformers-format Janus folder (config.json, generation_config.json, tokenizer.json,
        safetensors); the language model and the VQ model in ``dtype`` on ``device``.
        ``quantize="int8"``: int8 weights (per output channel) in the language model's blocks and the
        generation head, for decoding where reading weights is the cost (pair with bfloat16 on CPU)."""
        check_mode(quantize)
        folder = Path(folder)
        if not folder.is_dir():
            raise ArgenError(f"{folder} is not a model folder" + (" (it is a file)" if folder.is_file() else ""),
                             hint="pass the folder holding config.json, tokenizer.json and the weights")
        if not (folder / "config.json").is_file():
            raise ArgenError(f"{folder} has no config.json, so it is not a checkpoint folder",
                             hint="pass a Janus-Pro folder such as deepseek-community/Janus-Pro-1B")
        config = read_json(folder / "config.json")
        spec = janus_spec(config, str(folder / "config.json"))
        gen_path = folder / "generation_config.json"
        generation = read_json(gen_path) if gen_path.is_file() else {}
        prompts = JanusPromptEncoder.from_folder(folder, config, generation)
        model, vq = build(spec, read_weights(folder), str(folder), dtype=dtype, device=device)
        # the language model's blocks and the generation head; not the (tied, unused) text head
        quantize_weights(model, quantize, blocks="lm.layers", heads=("head_proj", "head_out"))
        return cls(model, vq, prompts, spec, folder.resolve().name, quantize)

    # -- what a caller needs to know
    @property
    def device(self) -> torch.device:
        return self.model.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The language model's compute dtype."""
        return self.model.embed.weight.dtype

    @property
    def defaults(self) -> SamplingConfig:
        """The reference's sampling settings: CFG 5, temperature 1."""
        return SamplingConfig(temperature=1.0, cfg_scale=5.0)

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def grid(self) -> int:
        return self.spec.grid

    @property
    def num_tokens(self) -> int:
        return self.spec.num_image_tokens

    @property
    def max_prompt_tokens(self) -> int:
        """Prompt tokens (chat format, BOS and image start included) that fit beside the image."""
        return self.spec.text.max_seq_len - self.num_tokens

    # -- prompts
    def prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Each prompt's token ids (text ids, not offset); too long a prompt is a UsageError."""
        rows = [self.prompts.encode(p) for p in prompts]
        for p, ids in zip(prompts, rows):
            if len(ids) > self.max_prompt_tokens:
                raise UsageError(f"the prompt {p[:40]!r}... is {len(ids)} tokens; this model takes at most "
                                 f"{self.max_prompt_tokens}", hint="shorten the prompt")
        return rows

    def uncond_ids(self, cond: list[list[int]], negative_prompts: Sequence[str | None] | None) -> list[list[int]]:
        """The unconditional twin of each row: the reference's pad-masked form, or the row's
        negative prompt when it has one."""
        negative = list(negative_prompts) if negative_prompts is not None else [None] * len(cond)
        out = []
        for ids, neg in zip(cond, negative):
            out.append(self.prompt_ids([neg])[0] if neg else self.prompts.unconditional(ids))
        return out

    # -- sampling
    @torch.inference_mode()
    def sample_tokens(self, prompts: Sequence[str], seeds: Sequence[int] | None = None,
                      sampling: SamplingConfig | None = None, negative_prompts: Sequence[str | None] | None = None,
                      forced: torch.Tensor | None = None, use_cache: bool = True, on_token=None,
                      compile: bool = False) -> torch.Tensor:
        """Image tokens (B, grid * grid), raster order, for ``prompts`` (B,).

        Row ``b`` samples with a generator seeded ``seeds[b]`` (so it is the same alone or in a
        batch); ``sampling`` defaults to :attr:`defaults`. ``negative_prompts[b]`` (None or "" for
        none) is what row ``b``'s unconditional branch reads; it needs guidance (cfg != 1).
        ``forced`` (B, grid * grid): tokens that are not -1 are teacher-forced (inpainting).
        ``compile``: the loop's --compile (on CUDA the graph-captured decode step; CFG outside it).
        """
        prompts = list(prompts)
        if not prompts:
            raise UsageError("no prompts given", hint="pass at least one prompt")
        b = len(prompts)
        sampling = sampling or self.defaults
        check_rows(b, "seeds", seeds)
        check_rows(b, "negative prompts", negative_prompts)
        if negative_prompts is not None and any(negative_prompts) and not sampling.guided:
            raise UsageError("a negative prompt needs classifier-free guidance",
                             hint="set --cfg to a value other than 1 (the default is 5)")
        forced = check_forced(forced, b, self.num_tokens, self.spec.codebook_size)
        cond = self.prompt_ids(prompts)
        uncond = self.uncond_ids(cond, negative_prompts) if sampling.guided else None
        k = self.spec.codebook_size  # text id t is model id k + t (see JanusImageLM)
        shift = lambda rows: [[k + t for t in r] for r in rows]  # noqa: E731
        rows = generate(self.model, shift(cond), self.num_tokens, sampling,
                        generators=make_generators(seeds, self.device),
                        use_cache=use_cache, compile=compile, on_token=on_token,
                        rules=token_rules(uncond_prompts=shift(uncond) if uncond is not None else None,
                                          forced=forced))
        return torch.tensor(rows, dtype=torch.long)  # (B, L)
