"""Class-conditional ImageNet generation with public checkpoints (VAR: next-scale; LlamaGen:
raster next-token): ImageNet class ids -> the family's sampling glue (the engine's loops) ->
the family's tokenizer decoder -> RGB (+ metadata). Each family is one entry of ``FAMILIES``."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from argen import weights
from argen.data.imagenet import NUM_CLASSES, class_name
from argen.device import resolve_device
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.pipelines.guidance import GUIDANCE, Guidance, describe_guidance  # noqa: F401 (re-exported)
from argen.models.checkpoint import read_json
from argen.samplers.processors import SamplingConfig


@dataclass
class Family:
    sampler: str  # next-scale | next-token
    load: Callable[[Path], tuple[Any, Any, dict]]  # folder -> (tokenizer, transformer, config)
    # (tokenizer, transformer, labels, sampling, generators, use_cache, **options) -> uint8 (B, H, W, 3)
    sample: Callable[..., np.ndarray]
    defaults: Callable[[], SamplingConfig]  # the settings the family's authors publish
    guidance: Guidance
    options: dict[str, str] = field(default_factory=dict)  # the family's own switches (all default off): name -> help


def _var() -> Family:
    from argen.models.var_convert import load_var_dir
    from argen.pipelines.var_sampling import FID_SAMPLING, sample_var

    def sample(vae, var, labels, sampling, generators, use_cache, more_smooth=False):
        return sample_var(vae, var, labels, sampling, generators=generators, use_cache=use_cache,
                          more_smooth=more_smooth)

    smooth = ("VAR's more_smooth: each scale hands a Gumbel-softmax blend of code vectors to the next "
              "(sharper at finer scales) instead of the sampled code; the README's 'better visual "
              "quality' option, not used for its FID figures. Needs a temperature above 0.")
    return Family("next-scale", load_var_dir, sample, lambda: FID_SAMPLING, GUIDANCE["var"], {"more_smooth": smooth})


def _llamagen() -> Family:
    from argen.models.llamagen_convert import load_llamagen_dir
    from argen.pipelines.llamagen import DEFAULT_SAMPLING, sample_llamagen

    def sample(vq, gpt, labels, sampling, generators, use_cache):
        return sample_llamagen(vq, gpt, labels, sampling, generators=generators, use_cache=use_cache)

    return Family("next-token", load_llamagen_dir, sample, lambda: DEFAULT_SAMPLING, GUIDANCE["llamagen"])


FAMILIES: dict[str, Callable[[], Family]] = {"var": _var, "llamagen": _llamagen}


def family_of(name_or_path: str) -> str | None:
    """"var" or "llamagen" for a class-conditional model (a name or folder), else None. A hub
    model that is not pulled yet is still recognised by its registry entry."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        cfg = p / "config.json"
        return read_json(cfg).get("family") if cfg.is_file() else None
    entry = weights.load_registry().models.get(name_or_path)
    return entry.hub.convert if entry is not None and entry.hub is not None else None


@dataclass
class ClassImageRequest:
    labels: list[int]  # one class id for all images, or one per image
    n: int = 1
    seed: int | None = None
    seeds: list[int] | None = None  # explicit seeds (batch recipes), one per image; overrides n and seed
    sampling: SamplingConfig | None = None  # None: the family's published settings
    batch_size: int = 8
    use_cache: bool = True
    more_smooth: bool = False  # VAR models only (Family.options)

    def __post_init__(self) -> None:
        if self.seeds is not None:
            self.n = len(self.seeds)
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, got {self.n}", hint="e.g. -n 4")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}", hint="e.g. 8")
        if len(self.labels) not in (1, self.n):
            raise UsageError(f"{len(self.labels)} class labels for {self.n} images",
                             hint="give one --class-label, or one per image")
        for c in self.labels:
            if not 0 <= c < NUM_CLASSES:
                raise UsageError(f"class label {c} is out of range (0 to {NUM_CLASSES - 1})")

    def rows(self) -> list[tuple[int, int]]:
        """(class id, seed) of every image: the given seeds, else S, S+1, ..."""
        labels = self.labels * self.n if len(self.labels) == 1 else self.labels
        if self.seeds is not None:
            return list(zip(labels, self.seeds))
        base = self.seed if self.seed is not None else random.randrange(2**31)
        return [(c, base + i) for i, c in enumerate(labels)]


@dataclass
class ClassImageOutput:
    image: np.ndarray  # (H, W, 3) uint8
    label: int
    seed: int
    index: int
    seconds: float
    metadata: dict[str, Any]


class ClassImagePipeline:
    """``ClassImagePipeline.from_pretrained("var-d16")(ClassImageRequest([207], n=8, seed=0))``."""

    modality = "image"

    def __init__(self, family: str, tokenizer: Any, model: Any, meta: dict, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.family_name, self.family = family, FAMILIES[family]()
        self.tokenizer, self.model, self.meta, self.ref = tokenizer, model, meta, ref
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "auto") -> "ClassImagePipeline":
        ref = weights.resolve(name_or_path, "image")
        meta = read_json(ref.path / "config.json")
        family = meta.get("family")
        if family not in FAMILIES:
            raise ArgenError(f"{ref.name} is not a class-conditional model (family {family!r})",
                             hint="class labels go with VAR and LlamaGen models (see `argen models`)")
        tokenizer, model, meta = FAMILIES[family]().load(ref.path)
        dev = resolve_device(device)
        return cls(family, tokenizer.to(dev).eval(), model.to(dev).eval(), meta, ref, dev)

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

    @torch.inference_mode()
    def __call__(self, req: ClassImageRequest) -> list[ClassImageOutput]:
        rows = req.rows()
        bad = [c for c, _ in rows if c >= self.num_classes]
        if bad:
            raise UsageError(f"class label {bad[0]} is out of range: {self.name} knows classes 0 to {self.num_classes - 1}")
        sampling = req.sampling or self.default_sampling()
        options = {"more_smooth": True} if req.more_smooth else {}  # only what is switched on
        for name in options:
            if name not in self.family.options:
                raise UsageError(f"{name} is an option of VAR models; {self.name} is a {self.family_name} model")
        outputs = []
        for start in range(0, len(rows), req.batch_size):
            chunk = rows[start:start + req.batch_size]
            t0 = time.time()
            # 1. one generator per image, so an image is the same alone or in a batch
            gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for _, s in chunk]
            # 2. sample the codes and decode them (the family's glue around the engine's loop)
            images = self.family.sample(self.tokenizer, self.model, [c for c, _ in chunk], sampling, gens,
                                        req.use_cache, **options)
            seconds = (time.time() - t0) / len(chunk)
            # 3. one record per image
            for j, (img, (label, seed)) in enumerate(zip(images, chunk)):
                outputs.append(ClassImageOutput(img, label, seed, start + j, seconds,
                                                self._metadata(sampling, label, seed, img.shape, options)))
        return outputs

    def _metadata(self, sampling: SamplingConfig, label: int, seed: int, shape: tuple,
                  options: dict[str, Any]) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="image", class_label=label, class_name=class_name(label), seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), family=self.family_name,
            sampler=self.sampler, sampling=sampling.to_dict(), size=[shape[1], shape[0]], device=str(self.device),
            **options)
