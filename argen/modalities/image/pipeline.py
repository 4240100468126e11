"""Text-to-image: caption -> prefix ids -> the engine's next-token or next-scale sampler ->
image tokens -> the tokenizer's decoder -> 64x64 RGB (+ metadata). Inpainting encodes the
given image and teacher-forces every token whose patch the mask leaves untouched."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.sampling.next_scale import feature_inputs, generate_scales
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.io.png import write_png
from argen.modalities.base import OnProgress, Output, Pipeline, Row, load_argen_transformer, refuse_compile, refuse_options, ticker
from argen.modalities.image.layout import ImageLayout
from argen.modalities.image.spec import ImageSpec
from argen.modalities.image.vq import ImageTokenizer, load_tokenizer_dir, to_uint8, to_unit


@dataclass
class ImageOutput(Output):
    pixels: np.ndarray | None = None  # (H, W, 3) uint8
    sampler: str = ""
    class_label: int | None = None  # class-conditional models

    suffixes: ClassVar[tuple[str, ...]] = (".png",)

    @property
    def image(self):
        """The picture as a PIL image."""
        from PIL import Image

        return Image.fromarray(self.pixels)

    def write(self, path: Path) -> Path:
        return write_png(path, self.pixels, self.metadata)

    def record(self) -> dict[str, Any]:
        who = {"class_label": self.class_label} if self.class_label is not None else {"prompt": self.prompt}
        return {"seed": self.seed, **who, "model": self.metadata.get("model"), "sampler": self.sampler}


class ImagePipelineBase(Pipeline):
    """What both image families share: the sampling flags and the summary line."""

    modality = "image"
    sampling_flags = {**Pipeline.sampling_flags, "cfg_schedule": "cfg_schedule"}

    def sampling(self, spec: ImageSpec) -> SamplingConfig:
        from argen.modalities.image.llamagen.sampling import cfg_tokens_from_interval

        s = super().sampling(spec)
        if spec.cfg_interval is not None:
            s.cfg_tokens = cfg_tokens_from_interval(spec.cfg_interval)
        return s

    def summary(self, outputs: list[Output]) -> str:
        sampler = outputs[0].sampler if outputs else ""
        return (f"{len(outputs)} image(s) in {sum(o.seconds for o in outputs):.2f} s ({self.name}, {sampler}), "
                f"seed {outputs[0].seed if outputs else '-'}")


class ImagePipeline(ImagePipelineBase):
    """The bundled shapes models: ``argen.load("shapes-next-scale")("a red circle", n=2, seed=0)``."""

    argen_section = "image"
    default_batch_size = 32

    def __init__(self, model: Transformer, tokenizer: ImageTokenizer, layout: ImageLayout,
                 ref: weights.ModelRef | None = None, device: torch.device | str = "cpu",
                 tokenizer_info: dict[str, Any] | None = None, sampling: dict[str, float] | None = None) -> None:
        self.model, self.tokenizer, self.layout, self.ref = model, tokenizer, layout, ref
        self.tokenizer_info = tokenizer_info or {}
        self.sampling_defaults = {"cfg_scale": 3.0, "temperature": 1.0, **(sampling or {})}
        self.device = torch.device(device)
        if tokenizer.cfg.codebook_size != layout.codebook_size or list(tokenizer.cfg.scales) != list(layout.scales):
            raise ArgenError("the image model and its tokenizer do not match (codebook or scales differ)",
                             hint="keep the tokenizer/ folder that was trained with the model")

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 sampler: str | None = None, **options: Any) -> "ImagePipeline":
        refuse_options(options, "image", "bundled image")
        model, meta, layout, dev = load_argen_transformer(ref, device, dtype, "image", ImageLayout)
        if sampler is not None and sampler != layout.sampler:
            other = ImageSpec.default_model({"sampler": sampler})
            raise UsageError(f"{ref.name} is a {layout.sampler} model; it cannot sample {sampler}",
                             hint=f"drop --sampler, or use --model {other}")
        refuse_compile(compile and layout.next_scale, ref.name, layout.sampler)
        tokenizer, tok_info = load_tokenizer_dir(ref.path / meta.get("tokenizer", "tokenizer"))
        pipe = cls(model, tokenizer.to(dev), layout, ref, dev, tok_info, meta.get("sampling"))
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The model's recommended settings (config.json "sampling"), with ``overrides`` that are not None."""
        return SamplingConfig(**{**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    def check_prompt(self, prompt: str) -> list[int]:
        """The prompt's prefix ids; for shapes models the caption grammar is checked too."""
        ids = self.layout.caption_ids(prompt)
        if self.layout.dataset == "shapes":
            from argen.modalities.image.shapes_grammar import parse_caption

            parse_caption(prompt)
        return ids

    def forced_tokens(self, image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """Token ids (L,) of ``image`` with -1 where a token's patch touches the mask."""
        size = self.tokenizer.cfg.image_size
        if image.shape[:2] != (size, size):
            raise UsageError(f"--inpaint image is {image.shape[1]}x{image.shape[0]}; this model makes {size}x{size}",
                             hint=f"resize the image to {size}x{size}")
        if mask.shape != image.shape[:2]:
            raise UsageError(f"--mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}",
                             hint="the mask must have the image's size")
        x = to_unit(np.array(image)[None]).to(self.device)
        tokens = self.tokenizer.encode(x)[0]  # (L,)
        m = torch.as_tensor(mask, dtype=torch.float32, device=self.device)[None, None]
        regen = torch.cat([torch.nn.functional.adaptive_max_pool2d(m, s).flatten() for s in self.layout.scales]) > 0
        return tokens.masked_fill(regen, -1)

    def sample_tokens(self, prompt_ids: list[list[int]], seeds: list[int], sampling: SamplingConfig,
                      forced: torch.Tensor | None = None, use_cache: bool = True,
                      negative: list[int] | None = None, on_progress: OnProgress | None = None) -> torch.Tensor:
        """Image tokens (B, L) for one prompt (prefix ids) and one seed per row; ``negative``: the
        prefix ids the unconditional branch of guidance reads instead of the null caption."""
        lay, b = self.layout, len(seeds)
        null = negative if negative is not None else lay.null_ids()
        gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        rows = forced[None].expand(b, -1) if forced is not None else None
        if not lay.next_scale:
            prompts = [ids + [lay.bos] for ids in prompt_ids]
            out = generate(self.model, prompts, lay.num_tokens, sampling, generators=gens,
                           rules=token_rules(lay.codebook_size, [null + [lay.bos]] * b, forced=rows),
                           use_cache=use_cache, compile=self.compile,
                           on_token=ticker(on_progress, lay.num_tokens, "tokens"))
            return torch.tensor(out, dtype=torch.long)
        per_scale = lay.split(rows) if rows is not None else None
        prefix = torch.tensor(prompt_ids, device=self.device)
        grids = generate_scales(self.model, prefix, torch.full((b, 1), lay.bos, device=self.device), lay.scales,
                                self._next_inputs(b), sampling, generators=gens,
                                uncond_prefix=torch.tensor([null] * b, device=self.device),
                                vocab_limit=lay.codebook_size, forced=per_scale, use_cache=use_cache,
                                raster=lay.first_parallel)
        return torch.cat([g.flatten(1) for g in grids], dim=1).cpu()

    def _next_inputs(self, b: int):
        """What scale k+1 reads, given scale k's codes: the upsampled codes, or for feature models
        the tokenizer's running f_hat area-downsampled, (B, s'^2, C)."""
        if not self.layout.feature_dim:
            return self.layout.upsample
        c = self.tokenizer.cfg
        return feature_inputs(self.tokenizer.quantizer.next_input,
                              torch.zeros(b, c.latent_dim, c.grid, c.grid, device=self.device))

    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        """Tokens (B, L) -> uint8 images (B, H, W, 3). One image at a time: convolution kernels
        round differently for different batch sizes, and a seed must give the same bytes
        whether its image was made alone or in a batch."""
        x = torch.cat([self.tokenizer.decode(row[None].to(self.device)) for row in tokens])
        return to_uint8(x)

    def check(self, spec: ImageSpec) -> None:
        if spec.more_smooth:
            raise UsageError(f"--more-smooth is an option of VAR models; {self.name} is a shapes model", hint="drop it")
        if (spec.inpaint is None) != (spec.mask is None):
            raise UsageError("--inpaint and --mask go together", hint="give both the image and its mask")
        self._forced = None
        if spec.inpaint is not None:
            from argen.io.png import read_image

            self._forced = self.forced_tokens(np.asarray(read_image(spec.inpaint)), load_mask(spec.mask))
        self._negative = self.check_prompt(spec.negative_prompt) if spec.negative_prompt is not None else None

    @torch.inference_mode()
    def generate_batch(self, spec: ImageSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[ImageOutput]:
        t0 = time.time()
        # 1. sample image tokens (prompts checked, inpainting tokens fixed in check), 2. decode them to pixels
        tokens = self.sample_tokens([prepared[r.prompt] for r in rows], [r.seed for r in rows], sampling, self._forced,
                                    use_cache=self.use_cache, negative=self._negative, on_progress=on_progress)
        images = self.decode(tokens)
        seconds = (time.time() - t0) / len(rows)
        # 3. one record per image
        return [ImageOutput(r.index, r.seed, r.prompt, seconds, self._metadata(spec, sampling, r.prompt, r.seed),
                            pixels=img, sampler=self.layout.sampler) for img, r in zip(images, rows)]

    def _metadata(self, spec: ImageSpec, sampling: SamplingConfig, prompt: str, seed: int) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="image", prompt=prompt, seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler=self.layout.sampler,
            sampling=sampling.to_dict(), negative_prompt=spec.negative_prompt, inpaint=spec.inpaint is not None or None,
            size=[self.tokenizer.cfg.image_size] * 2, device=str(self.device))


def load_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) bool: white (bright) pixels are regenerated."""
    from argen.io.png import read_image

    return np.asarray(read_image(path).convert("L")) >= 128
