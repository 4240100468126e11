"""The parts around the transformer, run through their reference libraries (imported lazily):
the umT5 text encoder (transformers), the Wan 3-D VAE (diffusers' ``AutoencoderKLWan``) and the
pipeline's scheduler (diffusers, from the folder's ``scheduler/scheduler_config.json``).

What they do mirrors diffusers' SkyReels-V2 / Wan pipelines (``pipeline_skyreels_v2_diffusion_forcing_v2v.py``,
``pipeline_wan.py``): prompts cleaned (ftfy when installed, HTML entities, whitespace), padded to
``max_sequence_length`` tokens, encoded with the attention mask, the embeddings past each
prompt's length set to zero; clips in [-1, 1], encoded to the latent distribution's mode and
normalised by the VAE config's ``latents_mean`` / ``latents_std``; latents decoded back and
mapped to [0, 1].
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import torch

from argen.errors import ArgenError
from argen.modalities.video.skyreels.config import read_json


def clean_prompt(text: str) -> str:
    """diffusers' ``prompt_clean``: ftfy's fix (when installed), HTML unescaped twice, whitespace runs to one space."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; plain text passes unchanged
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class TextEncoder:
    """umT5 prompt embeddings (R, L, 4096), loaded on first use. umT5-XXL has 5.7B parameters
    (11 GB in bfloat16): on an accelerator it is freed after each use unless ``keep`` (the
    embeddings of every prompt seen are kept, so a prompt is encoded once)."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype, max_length: int = 512) -> None:
        self.folder, self.device, self.dtype, self.max_length = folder, device, dtype, max_length
        self.tokenizer = self.model = None
        self.keep = device.type == "cpu"
        self.memo: dict[tuple[str, int], torch.Tensor] = {}

    def _load(self) -> None:
        from transformers import AutoTokenizer, UMT5EncoderModel

        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder / "tokenizer"))
        self.model = UMT5EncoderModel.from_pretrained(str(self.folder / "text_encoder"), dtype=self.dtype).to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """Embeddings (len(prompts), max_length, d), zero past each prompt's tokens."""
        todo = [p for p in dict.fromkeys(prompts) if (p, self.max_length) not in self.memo]
        if todo:
            if self.model is None:
                self._load()
            tok = self.tokenizer([clean_prompt(p) for p in todo], padding="max_length", max_length=self.max_length,
                                 truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
            mask = tok.attention_mask.to(self.device)
            out = self.model(tok.input_ids.to(self.device), mask).last_hidden_state
            out = out * mask[..., None].to(out.dtype)  # the pipelines keep u[:len] and pad with zeros
            for p, e in zip(todo, out):
                self.memo[(p, self.max_length)] = e
            if not self.keep:
                self.release()
        return torch.stack([self.memo[(p, self.max_length)] for p in prompts])

    def release(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class VideoVAE:
    """Wan's causal 3-D VAE: frames (T, H, W, 3) uint8 <-> normalised latents (1, C, T', h, w)."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        from diffusers import AutoencoderKLWan

        self.vae = AutoencoderKLWan.from_pretrained(str(folder), torch_dtype=dtype).to(device).eval()
        c = self.vae.config
        self.z_dim = c.z_dim
        self.temporal = 2 ** sum(c.temperal_downsample)  # 4: frames 4k+1 <-> latents k+1
        self.spatial = 2 ** len(c.temperal_downsample)  # 8
        self.mean = torch.tensor(c.latents_mean).view(1, -1, 1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(c.latents_std).view(1, -1, 1, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @torch.inference_mode()
    def encode(self, clip: np.ndarray) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> latents (1, C, (T - 1) // 4 + 1, H / 8, W / 8), float32."""
        x = torch.from_numpy(np.ascontiguousarray(clip).astype(np.float32) / 255.0)
        x = (2.0 * x - 1.0).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W) in [-1, 1]
        dt = self.vae.dtype
        z = self.vae.encode(x.to(self.device, dt)).latent_dist.mode()
        return ((z - self.mean.to(z)) * self.inv_std.to(z)).float()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (1, C, T', h, w) -> float32 frames (4 (T' - 1) + 1, H, W, 3) in [0, 1]."""
        dt = self.vae.dtype
        z = latents.to(self.device, dt)
        z = z / self.inv_std.to(z) + self.mean.to(z)
        x = self.vae.decode(z, return_dict=False)[0]  # (1, 3, T, H, W) in [-1, 1]
        x = (x.float() * 0.5 + 0.5).clamp(0, 1)
        return x[0].permute(1, 2, 3, 0).cpu().numpy()


def load_scheduler(folder: Path, shift: float | None = None):
    """The pipeline's scheduler from ``scheduler/scheduler_config.json`` (a diffusers class, e.g.
    ``UniPCMultistepScheduler``); ``shift`` overrides its ``flow_shift``."""
    import diffusers

    cfg = read_json(folder / "scheduler_config.json")
    name = cfg.get("_class_name", "")
    cls = getattr(diffusers, name, None) if name.endswith("Scheduler") else None
    if cls is None:
        raise ArgenError(f"unknown scheduler {name!r} in {folder}", hint="expected a diffusers scheduler, e.g. UniPCMultistepScheduler")
    sched = cls.from_config(cfg)
    if shift is not None:
        if "flow_shift" not in sched.config:
            raise ArgenError(f"{name} has no flow shift to set", hint="leave the shift at the model's default")
        sched = cls.from_config(sched.config, flow_shift=shift)
    return sched
