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
from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.image.var.model import VAR
from argen.modalities.image.var.vqvae import VQVAE
from argen.modalities.image.vq import to_uint8

# VAR's README settings for its FID numbers: cfg 1.5, top_k 900, top_p 0.96
FID_SAMPLING = SamplingConfig(cfg_scale=1.5, cfg_schedule="var", top_k=900, top_p=0.96)


@torch.inference_mode()
def sample_var_codes(vae: VQVAE, var: VAR, class_labels: Sequence[int] | torch.Tensor,
                     sampling: SamplingConfig | None = None, *, seed: int | None = None,
                     generators: list[torch.Generator] | None = None, use_cache: bool = True,
                     forced: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Codes of every scale ``[(B, s, s)]`` for one class label per row (``num_classes`` = the
    null class). ``sampling`` defaults to :data:`FID_SAMPLING`; row ``i`` draws from
    ``generators[i]`` or from seed ``seed + i``. ``forced[k]`` (B, s*s) keeps its non-negative
    entries (inpainting)."""
    sampling = sampling or FID_SAMPLING
    device = var.head.weight.device
    labels = torch.as_tensor(class_labels, dtype=torch.long, device=device).view(-1, 1)  # (B, 1)
    b, quant = labels.shape[0], vae.quantize
    p = quant.patch_nums[-1]
    next_inputs = feature_inputs(quant.next_step, torch.zeros(b, vae.cfg.z_channels, p, p, device=device))

    null = torch.full_like(labels, var.cfg.num_classes)
    return generate_scales(var, labels, labels[:, :0], var.cfg.patch_nums, next_inputs, sampling,
                           generators=generators, seed=seed, uncond_prefix=null, forced=forced,
                           use_cache=use_cache)


@torch.inference_mode()
def sample_var(vae: VQVAE, var: VAR, class_labels: Sequence[int] | torch.Tensor,
               sampling: SamplingConfig | None = None, *, seed: int | None = None,
               generators: list[torch.Generator] | None = None, use_cache: bool = True) -> np.ndarray:
    """Images for one ImageNet class label per row: uint8 (B, H, W, 3), H = W = 256 for the
    released models. See :func:`sample_var_codes` for the arguments."""
    grids = sample_var_codes(vae, var, class_labels, sampling, seed=seed, generators=generators,
                             use_cache=use_cache)
    # one image at a time: a seed gives the same bytes alone or in a batch
    images = torch.cat([vae.decode([g[i:i + 1] for g in grids]) for i in range(grids[0].shape[0])])
    return to_uint8(images)  # (B, H, W, 3)
