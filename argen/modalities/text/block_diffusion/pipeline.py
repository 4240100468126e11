"""`argen text` for block-diffusion models (BD3-LM, MDLM, Fast-dLLM v2, argen's own): the text
modality's family pipeline in front of :mod:`argen.engine.sampling.masked_block`.

A folder is this family's when its config.json names a block-diffusion family
(:func:`~argen.modalities.text.block_diffusion.api.family_of`), so `argen text --model DIR` picks
the sampler the model was trained for; ``--sampler next-token`` on such a model, and
``--sampler block-diffusion`` on an autoregressive one, are one-line usage errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from argen.checkpoints import resolve as weights
from argen.engine.device import resolve_device, resolve_dtype
from argen.engine.sampling.masked_block import BlockSettings
from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Pipeline, Row, refuse_options
from argen.modalities.text.block_diffusion.api import default_sampling, family_of, generate_blocks, load_block_diffusion, settings_for
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel
from argen.modalities.text.pipeline import StopWatcher, TextOutput, encode_prompt
from argen.modalities.text.spec import TextSpec


@dataclass
class BlockTextOutput(TextOutput):
    forward_passes: int = 0  # the model's forward passes this sample took

    def record(self) -> dict[str, Any]:
        rec = super().record()
        rec["forward_passes"] = self.forward_passes
        rec["passes_per_token"] = round(self.forward_passes / self.new_tokens, 4) if self.new_tokens else None
        return rec


class BlockDiffusionPipeline(Pipeline):
    """``argen.load("shakespeare-bd3")("ROMEO:", max_new_tokens=100, seed=0, threshold=0.7)``."""

    modality = "text"
    default_batch_size = 8
    sampling_flags = {**Pipeline.sampling_flags, "min_p": "min_p"}

    def __init__(self, model: BlockDiffusionModel, ref: weights.ModelRef, device: torch.device) -> None:
        self.model, self.ref, self.device = model, ref, device
        self.tokenizer = model.tokenizer
        self.on_text = None  # streaming of a single sample, one finished block at a time (the CLI sets it)

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path) -> bool:
        return config is not None and family_of(config) is not None

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 quantize: str = "none", sampler: str | None = None, **options: Any) -> "BlockDiffusionPipeline":
        refuse_options({**options, "quantize": quantize}, "text", "block-diffusion")
        if sampler == "next-token":
            raise UsageError(f"{ref.name} is a block-diffusion model; it has no next-token sampler",
                             hint="leave out --sampler (or use --sampler block-diffusion)")
        if compile:
            raise UsageError("--compile is not supported by block-diffusion decoding", hint="drop --compile")
        dev = resolve_device(device)
        model = load_block_diffusion(ref.path, dev, resolve_dtype(dtype, dev))
        if model.tokenizer is None:
            raise ArgenError(f"{ref.path} has no tokenizer.json",
                             hint="copy the model's tokenizer.json into the folder (BD3-LM and MDLM: GPT-2's)")
        return cls(model, ref, dev)

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        base = default_sampling(self.model)
        given = {k: v for k, v in overrides.items() if v is not None}
        return SamplingConfig(**{"temperature": base.temperature, "top_p": base.top_p, **given})

    def settings(self, spec: TextSpec) -> BlockSettings:
        """The block settings of a request (one-line errors for a block size the model was not
        trained for, a sub-block that does not divide it...)."""
        return settings_for(self.model, spec.block_size, spec.steps, spec.threshold, spec.unmask)

    def check(self, spec: TextSpec) -> None:
        if spec.draft or spec.lookup:
            raise UsageError("speculative decoding (--draft, --lookup) is for autoregressive models",
                             hint="drop it; block diffusion already writes several tokens per pass")
        if spec.cfg not in (None, 1.0):
            raise UsageError("--cfg is not supported by block-diffusion text models", hint="drop --cfg")
        if spec.repetition_penalty != 1.0:
            raise UsageError("--repetition-penalty is not supported by block-diffusion decoding",
                             hint="drop --repetition-penalty")
        if any(s == "" for s in spec.stop):
            raise UsageError("--stop needs a non-empty string", hint="e.g. --stop '\\n\\n'")
        self.settings(spec)

    def check_prompt(self, prompt: str | None) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.model.max_len - 1, self.model.max_len)  # room for one new token

    def generate(self, spec: TextSpec, rows: list[Row] | None = None, on_progress: OnProgress | None = None,
                 prepared=None, on_text=None):
        """As :meth:`Pipeline.generate`; ``on_text`` streams a single sample's text block by block."""
        self.on_text = on_text
        return super().generate(spec, rows, on_progress, prepared)

    def _strip_eos(self, toks: list[int]) -> list[int]:
        eos = self.model.eos_id
        return toks[:-1] if toks and eos is not None and toks[-1] == eos else toks

    @torch.inference_mode()
    def generate_batch(self, spec: TextSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[TextOutput]:
        settings = self.settings(spec)
        ids = [prepared[r.prompt] for r in rows]
        watcher = StopWatcher(list(spec.stop))
        stream = self.on_text if len(rows) == 1 and rows[0].index == 0 else None
        shown, row0, made = [""], [], [0]

        def on_block(_k: int, new: list[list[int]]) -> None:
            made[0] += len(new[0]) if new else 0
            if on_progress is not None:
                on_progress(min(made[0], spec.max_new_tokens), spec.max_new_tokens, "tokens")
            if stream is None:
                return
            row0.extend(new[0])
            text = watcher.safe(self.tokenizer.decode(self._strip_eos(row0[:spec.max_new_tokens])))
            if len(text) > len(shown[0]) and text.startswith(shown[0]):
                stream(text[len(shown[0]):])
                shown[0] = text

        t0 = time.time()
        tokens, passes = generate_blocks(self.model, ids, [r.seed for r in rows], spec.max_new_tokens,
                                         block_size=settings.block_size, steps=settings.steps,
                                         threshold=settings.threshold, sampling=sampling, sampler=settings.sampler,
                                         sub_block=settings.sub_block, on_block=on_block, use_cache=self.use_cache)
        seconds = time.time() - t0
        outputs = []
        for row, toks, n_pass in zip(rows, tokens, passes):
            text, _ = watcher.cut(self.tokenizer.decode(self._strip_eos(toks)))
            if stream and len(text) > len(shown[0]):
                stream(text[len(shown[0]):])
            if spec.echo:
                text = row.prompt + text
            meta = build_metadata(
                modality="text", prompt=row.prompt, seed=row.seed, model=self.ref.name,
                model_sha256=weights.digest(self.ref), model_path=None if self.ref.bundled else str(self.ref.path),
                sampler="block-diffusion", family=self.model.family, block_size=settings.block_size,
                steps=settings.steps, threshold=settings.threshold if settings.sampler == "confidence" else None,
                unmask=settings.sampler, sub_block=settings.sub_block, sampling=sampling.to_dict(),
                max_new_tokens=spec.max_new_tokens, new_tokens=len(toks), forward_passes=n_pass,
                stop=list(spec.stop) or None, device=str(self.device),
                dtype=str(next(self.model.net.parameters()).dtype).replace("torch.", ""))
            outputs.append(BlockTextOutput(index=row.index, seed=row.seed, prompt=row.prompt, seconds=seconds,
                                           metadata=meta, text=text, new_tokens=len(toks), forward_passes=n_pass))
        return outputs

    def summary(self, outputs: list) -> str:
        if not outputs:
            return "no text"
        total = sum(o.new_tokens for o in outputs)
        fwd = sum(o.forward_passes for o in outputs)
        seconds = max(o.seconds for o in outputs)
        return (f"{total} tokens in {seconds:.2f} s ({total / max(seconds, 1e-9):.1f} tokens/s), "
                f"{fwd / max(total, 1):.3f} forward passes per token, seed {outputs[0].seed}")
