"""Public text-to-image models behind `argen image`: Janus-Pro (a transformers-format folder or
hub id) and LlamaGen text-to-image (a converted folder). One pipeline class per family over the
family's model object (``argen/modalities/image/janus/pipeline.py:JanusImage``,
``argen/modalities/image/llamagen_t2i/pipeline.py:LlamaGenT2IImage``), which samples image tokens
on the engine's next-token loop and decodes them with the family's VQ. The pipeline adds what
every image family shares: rows and seeds, batching, ``--negative-prompt``, ``--inpaint/--mask``
(tokens outside the mask teacher-forced), PNGs with their metadata."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.device import resolve_device, resolve_dtype
from argen.engine.quantize import check_mode
from argen.engine.sampling.processors import SamplingConfig
from argen.errors import UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Row, quantize_record, refuse_options, ticker
from argen.modalities.image.pipeline import ImageOutput, ImagePipelineBase, load_mask
from argen.modalities.image.spec import ImageSpec


class TextToImagePipeline(ImagePipelineBase):
    """What the public text-to-image families share; subclasses say how to load the model."""

    family_name: ClassVar[str] = ""
    default_batch_size = 4

    def __init__(self, engine: Any, ref: weights.ModelRef | None = None) -> None:
        self.engine, self.ref = engine, ref
        self._forced: torch.Tensor | None = None
        self._negative: str | None = None

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @classmethod
    def load_engine(cls, path: Path, device: torch.device, dtype: torch.dtype, **options: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 sampler: str | None = None, quantize: str = "none", **options: Any) -> "TextToImagePipeline":
        if sampler is not None and sampler != "next-token":
            raise UsageError(f"{ref.name} is a next-token model; it cannot sample {sampler}", hint="drop --sampler")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev, check_mode(quantize))
        pipe = cls(cls.load_engine(ref.path, dev, dt, quantize=quantize, **options), ref)
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The family's published settings with ``overrides`` that are not None."""
        return SamplingConfig(**{**self.engine.defaults.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})

    def check(self, spec: ImageSpec) -> None:
        if spec.more_smooth:
            raise UsageError(f"--more-smooth is an option of VAR models; {self.name} is a {self.family_name} model",
                             hint="drop it")
        if (spec.inpaint is None) != (spec.mask is None):
            raise UsageError("--inpaint and --mask go together", hint="give both the image and its mask")
        self._negative = spec.negative_prompt or None
        if self._negative is not None:
            if not self.sampling(spec).guided:
                raise UsageError("--negative-prompt needs classifier-free guidance",
                                 hint=f"set --cfg to a value other than 1 (the default is {self.engine.defaults.cfg_scale:g})")
            self.check_prompt(self._negative)
        self._forced = None
        if spec.inpaint is not None:
            from argen.io.png import read_image

            self._forced = self.forced_tokens(np.asarray(read_image(spec.inpaint).convert("RGB")), load_mask(spec.mask))

    def forced_tokens(self, image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """Token ids (L,) of ``image`` with -1 where a token's patch touches the mask."""
        size = self.engine.image_size
        if image.shape[:2] != (size, size):
            raise UsageError(f"--inpaint image is {image.shape[1]}x{image.shape[0]}; {self.name} makes {size}x{size}",
                             hint=f"resize the image to {size}x{size}")
        if mask.shape != image.shape[:2]:
            raise UsageError(f"--mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}",
                             hint="the mask must have the image's size")
        tokens = self.engine.encode(np.array(image)[None])[0]  # (L,)
        m = torch.as_tensor(mask, dtype=torch.float32)[None, None]
        regen = torch.nn.functional.adaptive_max_pool2d(m, self.engine.grid).flatten() > 0
        return tokens.masked_fill(regen, -1)

    def check_prompt(self, prompt: str | None) -> str:
        if prompt is None or not prompt.strip():
            raise UsageError(f"{self.name} is a text-to-image model: give a prompt",
                             hint='e.g. --prompt "a photo of a cat"')
        return prompt

    @torch.inference_mode()
    def generate_batch(self, spec: ImageSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[ImageOutput]:
        t0 = time.time()
        b = len(rows)
        forced = None if self._forced is None else self._forced[None].expand(b, -1)
        tokens = self.engine.sample_tokens([prepared[r.prompt] for r in rows], seeds=[r.seed for r in rows],
                                           sampling=sampling, negative_prompts=[self._negative] * b if self._negative else None,
                                           forced=forced, use_cache=self.use_cache, compile=self.compile,
                                           on_token=ticker(on_progress, self.engine.num_tokens, "tokens"))
        # one image at a time: a convolution's sums depend on the batch size, and an image must
        # not depend on whether it was made alone or in a batch
        images = np.concatenate([self.engine.decode(row[None]) for row in tokens])
        seconds = (time.time() - t0) / b
        return [ImageOutput(r.index, r.seed, r.prompt, seconds, self._metadata(spec, sampling, r.prompt, r.seed),
                            pixels=img, sampler="next-token") for img, r in zip(images, rows)]

    def _metadata(self, spec: ImageSpec, sampling: SamplingConfig, prompt: str, seed: int) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="image", prompt=prompt, seed=seed, model=self.name, family=self.family_name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler="next-token",
            sampling=sampling.to_dict(), negative_prompt=self._negative, inpaint=spec.inpaint is not None or None,
            size=[self.engine.image_size] * 2, device=str(self.device), dtype=str(self.engine.dtype).removeprefix("torch."),
            quantize=quantize_record(self.engine.quantize))


class JanusPipeline(TextToImagePipeline):
    """Janus-Pro: ``argen.load("janus-pro-1b")("a photo of a cat", n=4, seed=0)``; ``quantize="int8"``
    stores the language model's weights in int8 (see ``JanusImage.from_pretrained``)."""

    family_name = "janus"

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        from argen.modalities.image.janus.config import matches

        return matches(config)

    @classmethod
    def load_engine(cls, path: Path, device: torch.device, dtype: torch.dtype, quantize: str = "none",
                    **options: Any) -> Any:
        from argen.modalities.image.janus.pipeline import JanusImage

        refuse_options(options, "image", "Janus")
        return JanusImage.from_pretrained(path, device=device, dtype=dtype, quantize=quantize)

    def check_prompt(self, prompt: str | None) -> str:
        self.engine.prompt_ids([super().check_prompt(prompt)])  # too long a prompt is refused here
        return prompt


class LlamaGenT2IPipeline(TextToImagePipeline):
    """LlamaGen text-to-image (a folder converted from ``peizesun/llamagen_t2i``); captions come
    from FLAN-T5-XL, read from the Hugging Face cache (never downloaded while generating)."""

    family_name = "llamagen_t2i"

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        from argen.modalities.image.llamagen_t2i.config import matches

        return matches(config)

    @classmethod
    def load_engine(cls, path: Path, device: torch.device, dtype: torch.dtype, quantize: str = "none",
                    text_encoder=None, **options: Any) -> Any:
        from argen.modalities.image.llamagen_t2i.pipeline import LlamaGenT2IImage

        refuse_options(options, "image", "LlamaGen text-to-image")
        return LlamaGenT2IImage.from_pretrained(path, device=device, dtype=dtype, text_encoder=text_encoder,
                                                quantize=quantize)

    def check_prompt(self, prompt: str | None) -> str:
        prompt = super().check_prompt(prompt)
        count = getattr(self.engine.text_encoder, "count_tokens", None)
        if count is not None and count([prompt])[0] > self.engine.max_prompt_tokens:
            raise UsageError(f"the prompt {prompt[:40]!r}... is longer than the {self.engine.max_prompt_tokens} T5 "
                             f"tokens {self.name} reads", hint="shorten the prompt")
        return prompt
