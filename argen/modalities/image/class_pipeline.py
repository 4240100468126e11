"""Class-conditional ImageNet generation with public checkpoints (VAR: next-scale; LlamaGen:
raster next-token): ImageNet class ids -> the family's sampling glue (the engine's loops) ->
the family's tokenizer decoder -> RGB (+ metadata). Each family is one entry of ``FAMILIES``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.device import resolve_device, resolve_dtype
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.processors import SamplingConfig
from argen.errors import UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import Row, quantize_record, refuse_compile, refuse_options
from argen.modalities.image.guidance import GUIDANCE, Guidance
from argen.modalities.image.imagenet import class_index, class_name
from argen.modalities.image.pipeline import ImageOutput, ImagePipelineBase
from argen.modalities.image.spec import ImageSpec


@dataclass
class Family:
    sampler: str  # next-scale | next-token
    load: Callable[[Path], tuple[Any, Any, dict]]  # folder -> (tokenizer, transformer, config)
    # (tokenizer, transformer, labels, sampling, generators, use_cache, **options) -> uint8 (B, H, W, 3);
    # next-token families also take compile= (next-scale ones refuse --compile when loaded)
    sample: Callable[..., np.ndarray]
    defaults: Callable[[], SamplingConfig]  # the settings the family's authors publish
    guidance: Guidance
    options: dict[str, str] = field(default_factory=dict)  # the family's own switches (all default off): name -> help
    quantizable: bool = False  # a next-token Transformer that --quantize int8 applies to


def _var() -> Family:
    from argen.modalities.image.var.convert import load_var_dir
    from argen.modalities.image.var.sampling import FID_SAMPLING, sample_var

    def sample(vae, var, labels, sampling, generators, use_cache, more_smooth=False):
        return sample_var(vae, var, labels, sampling, generators=generators, use_cache=use_cache,
                          more_smooth=more_smooth)

    smooth = ("VAR's more_smooth: each scale hands a Gumbel-softmax blend of code vectors to the next "
              "(sharper at finer scales) instead of the sampled code; the README's 'better visual "
              "quality' option, not used for its FID figures. Needs a temperature above 0.")
    return Family("next-scale", load_var_dir, sample, lambda: FID_SAMPLING, GUIDANCE["var"], {"more_smooth": smooth})


def _llamagen() -> Family:
    from argen.modalities.image.llamagen.convert import load_llamagen_dir
    from argen.modalities.image.llamagen.sampling import DEFAULT_SAMPLING, sample_llamagen

    def sample(vq, gpt, labels, sampling, generators, use_cache, compile=False):
        return sample_llamagen(vq, gpt, labels, sampling, generators=generators, use_cache=use_cache, compile=compile)

    return Family("next-token", load_llamagen_dir, sample, lambda: DEFAULT_SAMPLING, GUIDANCE["llamagen"],
                  quantizable=True)


FAMILIES: dict[str, Callable[[], Family]] = {"var": _var, "llamagen": _llamagen}


class ClassImagePipeline(ImagePipelineBase):
    """VAR and LlamaGen class-conditional models: ``argen.load("var-d16")("golden_retriever", n=8, seed=0)``;
    a prompt is an ImageNet class id or name."""

    default_batch_size = 8

    def __init__(self, family: str, tokenizer: Any, model: Any, meta: dict, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu", quantize: str = "none") -> None:
        self.family_name, self.family = family, FAMILIES[family]()
        self.tokenizer, self.model, self.meta, self.ref = tokenizer, model, meta, ref
        self.device, self.quantize = torch.device(device), quantize

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        return bool(config) and config.get("family") in FAMILIES

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 sampler: str | None = None, quantize: str = "none", **options: Any) -> "ClassImagePipeline":
        family = config.get("family")
        quantize = check_mode(quantize)
        refuse_options({**options, **({} if FAMILIES[family]().quantizable else {"quantize": quantize})}, "image",
                       "VAR" if family == "var" else None)
        if sampler is not None and sampler != FAMILIES[family]().sampler:
            raise UsageError(f"{ref.name} is a {FAMILIES[family]().sampler} model; it cannot sample {sampler}",
                             hint="drop --sampler")
        tokenizer, model, meta = FAMILIES[family]().load(ref.path)
        refuse_compile(compile and FAMILIES[family]().sampler != "next-token", ref.name, FAMILIES[family]().sampler)
        dev = resolve_device(device)
        model = quantize_weights(model.to(device=dev, dtype=resolve_dtype(dtype, dev, quantize)), quantize)
        pipe = cls(family, tokenizer.to(dev).eval(), model.eval(), meta, ref, dev, quantize)
        pipe.compile = compile
        return pipe

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    @property
    def sampler(self) -> str:
        return self.family.sampler

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The family's published settings (or the folder's config.json "sampling") with
        ``overrides`` that are not None."""
        base = {**self.family.defaults().to_dict(), **(self.meta.get("sampling") or {})}
        return SamplingConfig(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def num_classes(self) -> int:
        cfg = self.model.cfg
        return cfg.num_classes if hasattr(cfg, "num_classes") else cfg.cond_vocab - 1

    def check(self, spec: ImageSpec) -> None:
        for flag, value in (("--negative-prompt", spec.negative_prompt), ("--inpaint", spec.inpaint)):
            if value is not None:
                raise UsageError(f"{flag} does not apply to {self.name}, a class-conditional model",
                                 hint="class models take an ImageNet class (--class-label or --prompt) only")
        self._options = {"more_smooth": True} if spec.more_smooth else {}  # only what is switched on
        for name in self._options:
            if name not in self.family.options:
                raise UsageError(f"--{name.replace('_', '-')} is an option of VAR models; {self.name} is a "
                                 f"{self.family_name} model", hint="drop it")

    def check_prompt(self, prompt: str | None) -> int:
        if prompt is None:
            raise UsageError(f"{self.name} is class-conditional: give --class-label ID|NAME", hint="e.g. --class-label 207")
        label = class_index(prompt)
        if label >= self.num_classes:
            raise UsageError(f"class label {label} is out of range: {self.name} knows classes 0 to {self.num_classes - 1}")
        return label

    @torch.inference_mode()
    def generate_batch(self, spec: ImageSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress=None) -> list[ImageOutput]:
        t0 = time.time()
        labels = [prepared[r.prompt] for r in rows]
        # 1. one generator per image, so an image is the same alone or in a batch
        gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(r.seed) for r in rows]
        # 2. sample the codes and decode them (the family's glue around the engine's loop)
        options = {**self._options, **({"compile": True} if self.compile else {})}
        images = self.family.sample(self.tokenizer, self.model, labels, sampling, gens, self.use_cache, **options)
        seconds = (time.time() - t0) / len(rows)
        # 3. one record per image
        return [ImageOutput(r.index, r.seed, r.prompt, seconds,
                            self._metadata(sampling, label, r.seed, img.shape, self._options),
                            pixels=img, sampler=self.sampler, class_label=label)
                for img, label, r in zip(images, labels, rows)]

    def _metadata(self, sampling: SamplingConfig, label: int, seed: int, shape: tuple,
                  options: dict[str, Any]) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="image", class_label=label, class_name=class_name(label), seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), family=self.family_name,
            sampler=self.sampler, sampling=sampling.to_dict(), size=[shape[1], shape[0]], device=str(self.device),
            quantize=quantize_record(self.quantize), **options)
