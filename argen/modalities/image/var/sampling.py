"""Class-conditional ImageNet sampling with VAR: class labels -> the engine's next-scale loop
(VAR transformer + the VQ-VAE's f_hat step between scales) -> the VAE decoder -> RGB.

Glue only: the loop is :func:`argen.engine.sampling.next_scale.generate_scales`; the guidance ramp of
VAR's ``autoregressive_infer_cfg`` (FoundationVision/VAR ``models/var.py``) is
``SamplingConfig(cfg_schedule="var")``; the sampling step is VAR's
``get_next_autoregressive_input`` (:meth:`MultiScaleQuantizer.next_step`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from argen.engine.sampling.next_scale import feature_inputs, generate_scales
from argen.engine.sampling.processors import SamplingConfig, make_generators
from argen.modalities.image.var.model import VAR
from argen.modalities.image.var.vqvae import VQVAE

# VAR's README settings for its FID numbers: cfg 1.5, top_k 900, top_p 0.96
FID_SAMPLING = SamplingConfig(cfg_scale=1.5, cfg_schedule="var", top_k=900, top_p=0.96)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Decoded images (B, 3, H, W), clamped to [-1, 1] -> uint8 (B, H, W, 3), as VAR writes them:
    ``autoregressive_infer_cfg`` returns ``(x + 1) * 0.5`` (``models/var.py``), and
    ``demo_sample.ipynb`` multiplies by 255 and truncates with numpy's ``astype(np.uint8)``."""
    return images.add(1).mul_(0.5).mul_(255).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)


def _sample(vae: VQVAE, var: VAR, class_labels: Sequence[int] | torch.Tensor, sampling: SamplingConfig,
            seed: int | None, generators: list[torch.Generator] | None, use_cache: bool,
            forced: list[torch.Tensor] | None, more_smooth: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(codes of every scale ``[(B, s, s)]``, the final f_hat (B, Cvae, p, p))."""
    device = var.head.weight.device
    labels = torch.as_tensor(class_labels, dtype=torch.long, device=device).view(-1, 1)  # (B, 1)
    b, quant = labels.shape[0], vae.quantize
    p = quant.patch_nums[-1]
    final = [torch.zeros(b, vae.cfg.z_channels, p, p, device=device)]  # f_hat, updated after each scale

    def step(k: int, f_hat: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        final[0], nxt = quant.next_step(k, f_hat, codes)
        return final[0], nxt

    null = torch.full_like(labels, var.cfg.num_classes)
    grids = generate_scales(var, labels, labels[:, :0], var.cfg.patch_nums, feature_inputs(step, final[0]), sampling,
                            generators=generators, seed=seed, uncond_prefix=null, forced=forced,
                            use_cache=use_cache, more_smooth=more_smooth, always_twins=sampling.cfg_schedule == "var")
    return grids, final[0]


@torch.inference_mode()
def sample_var_codes(vae: VQVAE, var: VAR, class_labels: Sequence[int] | torch.Tensor,
                     sampling: SamplingConfig | None = None, *, seed: int | None = None,
                     generators: list[torch.Generator] | None = None, use_cache: bool = True,
                     forced: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Codes of every scale ``[(B, s, s)]`` for one class label per row (``num_classes`` = the
    null class). ``sampling`` defaults to :data:`FID_SAMPLING`; row ``i`` draws from
    ``generators[i]`` or from seed ``seed + i``. ``forced[k]`` (B, s*s) keeps its non-negative
    entries (inpainting)."""
    return _sample(vae, var, class_labels, sampling or FID_SAMPLING, seed, generators, use_cache, forced, False)[0]


@torch.inference_mode()
def sample_var(vae: VQVAE, var: VAR, class_labels: Sequence[int] | torch.Tensor,
               sampling: SamplingConfig | None = None, *, seed: int | None = None,
               generators: list[torch.Generator] | None = None, use_cache: bool = True,
               more_smooth: bool = False) -> np.ndarray:
    """Images for one ImageNet class label per row: uint8 (B, H, W, 3), H = W = 256 for the
    released models. See :func:`sample_var_codes` for the arguments.

    ``more_smooth`` is VAR's option of that name (``autoregressive_infer_cfg(more_smooth=True)``,
    off by default; the README: "for better visual quality", never for its FID figures): each
    scale passes a Gumbel-softmax blend of code vectors to the next instead of the sampled code
    (:func:`argen.engine.sampling.next_scale.smooth_weights`), and the image is decoded from those
    blended features. It needs a temperature above 0. Its rows are sampled one at a time."""
    sampling = sampling or FID_SAMPLING
    if more_smooth:
        # one row at a time: the blended features carry the rounding of the transformer's matrix
        # products, which depends on the number of rows; alone, a row is the same in any batch
        # (and is the reference's B = 1 run)
        labels = torch.as_tensor(class_labels, dtype=torch.long).view(-1)
        if generators is None:
            base = seed if seed is not None else torch.seed() % 2**31
            generators = make_generators(base, labels.shape[0], var.head.weight.device)
        f_hats = [_sample(vae, var, labels[i:i + 1], sampling, None, generators[i:i + 1], use_cache, None, True)[1]
                  for i in range(labels.shape[0])]
        images = torch.cat([vae.decode_fhat(f) for f in f_hats])  # the blended features are not a function of the codes
    else:
        grids = _sample(vae, var, class_labels, sampling, seed, generators, use_cache, None, False)[0]
        # one image at a time: a seed gives the same bytes alone or in a batch
        images = torch.cat([vae.decode([g[i:i + 1] for g in grids]) for i in range(grids[0].shape[0])])
    return to_uint8(images)  # (B, H, W, 3)
