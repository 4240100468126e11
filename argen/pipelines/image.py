"""Text-to-image: caption -> prefix ids -> the engine's next-token or next-scale sampler ->
image tokens -> the tokenizer's decoder -> 64x64 RGB (+ metadata). Inpainting encodes the
given image and teacher-forces every token whose patch the mask leaves untouched."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from argen import weights
from argen.device import resolve_device
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.models.image_layout import ImageLayout
from argen.models.image_vq import ImageTokenizer, load_tokenizer_dir, to_uint8, to_unit
from argen.models.loader import load_transformer
from argen.models.transformer import Transformer
from argen.pipelines.rows import PromptRows
from argen.samplers.next_scale import feature_inputs, generate_scales
from argen.samplers.next_token import generate
from argen.samplers.processors import SamplingConfig

# the bundled model of each sampler
DEFAULT_MODELS = {"next-scale": "shapes-next-scale", "next-token": "shapes-next-token"}


@dataclass
class ImageRequest(PromptRows):
    prompt: str | list[str]  # a list (batch recipes) pairs with ``seeds``, one seed per prompt
    n: int = 1
    seed: int | None = None
    seeds: list[int] | None = None
    sampling: SamplingConfig | None = None  # None: the model's defaults (config.json "sampling")
    inpaint: np.ndarray | None = None  # (H, W, 3) uint8: the image to keep outside the mask
    mask: np.ndarray | None = None  # (H, W) bool: True where the image is regenerated
    batch_size: int = 32
    use_cache: bool = True

    def __post_init__(self) -> None:
        self.check_rows()
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}", hint="e.g. 16")
        if (self.inpaint is None) != (self.mask is None):
            raise UsageError("--inpaint and --mask go together", hint="give both the image and its mask")


@dataclass
class ImageOutput:
    image: np.ndarray  # (H, W, 3) uint8
    seed: int
    index: int
    seconds: float
    metadata: dict[str, Any]


class ImagePipeline:
    """``ImagePipeline.from_pretrained("shapes-next-scale")(ImageRequest("a red circle"))``."""

    modality = "image"

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
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto",
                        sampler: str | None = None) -> "ImagePipeline":
        if sampler is not None and sampler not in DEFAULT_MODELS:
            raise UsageError(f"unknown --sampler {sampler!r}", hint="use next-scale or next-token")
        default = DEFAULT_MODELS[sampler] if sampler else weights.default_model("image")
        ref = weights.resolve(name_or_path or default, "image")
        model, info = load_transformer(ref.path)
        meta = info.get("config") or {}
        if info.get("modality") != "image" or "image" not in meta:
            raise ArgenError(f"{ref.name} is not an image model", hint="pick an image model (see `argen models`)")
        try:
            layout = ImageLayout(**meta["image"])
        except (TypeError, ValueError) as e:
            raise ArgenError(f"{ref.path / 'config.json'}: invalid image layout ({e})",
                             hint="the file is corrupt or from another tool") from None
        if sampler is not None and sampler != layout.sampler:
            raise UsageError(f"{ref.name} is a {layout.sampler} model; it cannot sample {sampler}",
                             hint=f"drop --sampler, or use --model {DEFAULT_MODELS[sampler]}")
        tokenizer, tok_info = load_tokenizer_dir(ref.path / meta.get("tokenizer", "tokenizer"))
        dev = resolve_device(device)
        return cls(model.to(dev), tokenizer.to(dev), layout, ref, dev, tok_info, meta.get("sampling"))

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
            from argen.data.shapes import parse_caption

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
                      forced: torch.Tensor | None = None, use_cache: bool = True) -> torch.Tensor:
        """Image tokens (B, L) for one prompt (prefix ids) and one seed per row."""
        lay, b = self.layout, len(seeds)
        gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        rows = forced[None].expand(b, -1) if forced is not None else None
        if not lay.next_scale:
            prompts = [ids + [lay.bos] for ids in prompt_ids]
            out = generate(self.model, prompts, lay.num_tokens, sampling, generators=gens,
                           uncond_prompts=[lay.null_ids() + [lay.bos]] * b, vocab_limit=lay.codebook_size,
                           forced=rows, use_cache=use_cache)
            return torch.tensor(out, dtype=torch.long)
        per_scale = lay.split(rows) if rows is not None else None
        prefix = torch.tensor(prompt_ids, device=self.device)
        grids = generate_scales(self.model, prefix, torch.full((b, 1), lay.bos, device=self.device), lay.scales,
                                self._next_inputs(b), sampling, generators=gens,
                                uncond_prefix=torch.tensor([lay.null_ids()] * b, device=self.device),
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

    @torch.inference_mode()
    def __call__(self, req: ImageRequest) -> list[ImageOutput]:
        # 1. check the prompts and the inpainting inputs
        rows = req.rows()
        ids = {p: self.check_prompt(p) for p in dict.fromkeys(p for p, _ in rows)}
        forced = self.forced_tokens(req.inpaint, req.mask) if req.inpaint is not None else None
        sampling = req.sampling or self.default_sampling()
        outputs = []
        for start in range(0, len(rows), req.batch_size):
            chunk = rows[start:start + req.batch_size]
            t0 = time.time()
            # 2. sample image tokens, 3. decode them to pixels
            tokens = self.sample_tokens([ids[p] for p, _ in chunk], [s for _, s in chunk], sampling, forced,
                                        req.use_cache)
            images = self.decode(tokens)
            seconds = (time.time() - t0) / len(chunk)
            # 4. one record per image
            for j, (img, (prompt, seed)) in enumerate(zip(images, chunk)):
                outputs.append(ImageOutput(img, seed, start + j, seconds, self._metadata(req, sampling, prompt, seed)))
        return outputs

    def _metadata(self, req: ImageRequest, sampling: SamplingConfig, prompt: str, seed: int) -> dict[str, Any]:
        ref = self.ref
        return build_metadata(
            modality="image", prompt=prompt, seed=seed, model=self.name,
            model_sha256=weights.digest(ref) if ref else None,
            model_path=None if ref is None or ref.bundled else str(ref.path), sampler=self.layout.sampler,
            sampling=sampling.to_dict(), inpaint=req.inpaint is not None or None,
            size=[self.tokenizer.cfg.image_size] * 2, device=str(self.device))


def load_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) bool: white (bright) pixels are regenerated."""
    from argen.io.png import read_image

    return np.asarray(read_image(path).convert("L")) >= 128
