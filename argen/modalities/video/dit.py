"""The block-causal latent video transformer (ViD-GPT / Ca2-VDM / ACDiT style).

A clip's frame latents (B, F, C, H, W) are cut into ``patch`` x ``patch`` patches, one token
each, frame after frame; ``block_frames`` frames form an attention block: bidirectional inside,
causal across blocks, after a prefix of caption tokens. Each block carries its own flow-matching
time ``t`` (0 clean, 1 pure noise), added to its tokens through a sinusoidal embedding, so one
sequence can hold clean context blocks and a noisy block being denoised. The backbone is the
engine's :class:`~argen.engine.transformer.Transformer` (RoPE over token positions, or with
``rope: 3d`` over each token's time, row and column, so the KV cache can slide); this module adds
the patch embedding, a learned position inside the frame, the time embedding and the velocity
head. With ``backbone.adaln`` the times also modulate every block (DiT's adaLN-Zero: per-frame
scale, shift and gate, the caption a learned vector of its own) and the head's input, where
otherwise they only enter through the tokens.

Flow matching (rectified flow): ``x_t = (1 - t) x0 + t eps``, the model predicts
``v = eps - x0`` (the convention of diffusers' ``FlowMatchEulerDiscreteScheduler``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from argen.engine.config import DictConfig, TransformerConfig
from argen.engine.kv_cache import KVCache
from argen.engine.transformer import Transformer, expand_runs


@dataclass
class VideoModelConfig(DictConfig):
    latent_channels: int = 4
    latent_size: int = 8  # latent frames are latent_size x latent_size
    patch: int = 2
    block_frames: int = 2
    prompt_len: int = 12  # caption tokens, padded with id 0
    text_vocab: int = 32  # caption word ids (0: padding)
    max_frames: int = 64  # frames one training sequence or recompute reference may hold
    backbone: dict = field(default_factory=lambda: {"n_layer": 4, "n_head": 4, "d_model": 192})
    # "1d": RoPE over token positions (the caption, then frame after frame); "3d": over each frame
    # token's (time, row, column), so attention scores see frame and grid offsets directly
    rope: str = "1d"

    @property
    def tokens_per_frame(self) -> int:
        return (self.latent_size // self.patch) ** 2

    @property
    def tokens_per_block(self) -> int:
        return self.tokens_per_frame * self.block_frames

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch**2

    def backbone_config(self) -> TransformerConfig:
        if self.rope not in ("1d", "3d"):
            raise ValueError(f"video rope must be '1d' or '3d', not {self.rope!r}")
        grid = {"rope_grid": self.latent_size // self.patch, "rope_frame": self.tokens_per_frame,
                "rope_grid_start": self.prompt_len} if self.rope == "3d" else {}
        return TransformerConfig(vocab_size=self.text_vocab, prefix_len=self.prompt_len, block_size=self.tokens_per_block,
                                 max_seq_len=self.prompt_len + self.max_frames * self.tokens_per_frame, **grid,
                                 **self.backbone)


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of times in [0, 1] (scaled by 1000, as diffusion timesteps): (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * 1000.0)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class VideoDiT(nn.Module):
    def __init__(self, cfg: VideoModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Transformer(cfg.backbone_config())
        d = self.backbone.cfg.d_model
        self.patch_in = nn.Linear(cfg.patch_dim, d)
        self.frame_pos = nn.Parameter(torch.zeros(cfg.tokens_per_frame, d))
        nn.init.normal_(self.frame_pos, std=0.02)
        self.time_mlp = nn.Sequential(nn.Linear(128, d), nn.SiLU(), nn.Linear(d, d))
        self.head = nn.Linear(d, cfg.patch_dim)
        nn.init.zeros_(self.head.weight)  # start by predicting zero velocity
        nn.init.zeros_(self.head.bias)
        if self.backbone.cfg.adaln:  # adaLN-Zero: the caption's conditioning vector, and the head's modulation
            self.prompt_mod = nn.Parameter(torch.zeros(d))
            self.final_ada = nn.Linear(d, 2 * d)
            nn.init.zeros_(self.final_ada.weight)
            nn.init.zeros_(self.final_ada.bias)

    # --- layout -----------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) -> (B, F * tokens_per_frame, C * p * p), row-major patches per frame."""
        b, f, c, h, w = x.shape
        p = self.cfg.patch
        x = x.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)  # (B, F, h', w', C, p, p)
        return x.reshape(b, f * (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        """The inverse of :meth:`patchify`: (B, F * tpf, C * p * p) -> (B, F, C, H, W)."""
        b = tokens.shape[0]
        c, p, s = self.cfg.latent_channels, self.cfg.patch, self.cfg.latent_size // self.cfg.patch
        x = tokens.reshape(b, frames, s, s, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)  # (B, F, C, s, p, s, p)
        return x.reshape(b, frames, c, s * p, s * p)

    def frame_positions(self, first_frame: int, frames: int, batch: int, device) -> torch.Tensor:
        """Token positions (B, frames * tpf) of frames first_frame.. (after the caption prefix)."""
        tpf = self.cfg.tokens_per_frame
        start = self.cfg.prompt_len + first_frame * tpf
        return torch.arange(start, start + frames * tpf, device=device).expand(batch, -1)

    # --- embeddings ---------------------------------------------------------------------------
    def embed_frames(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Latent frames (B, F, C, H, W) with per-frame times t (B, F) -> token vectors (B, F * tpf, d)."""
        b, f = x.shape[:2]
        h = self.patch_in(self.patchify(x))  # (B, F*tpf, d)
        h = h.view(b, f, self.cfg.tokens_per_frame, -1) + self.frame_pos
        h = h + self.time_cond(t)[:, :, None, :]  # (B, F, 1, d)
        return h.reshape(b, f * self.cfg.tokens_per_frame, -1)

    def time_cond(self, t: torch.Tensor) -> torch.Tensor:
        """Per-frame times (B, F) -> their conditioning vectors (B, F, d)."""
        return self.time_mlp(time_embedding(t, 128))

    def modulation(self, b: int, prompt: bool, *times: torch.Tensor) -> tuple[torch.Tensor, tuple] | None:
        """The backbone's adaLN conditioning (None without adaLN) for a pass over the caption (when
        ``prompt``) then runs of frames at times (B, F) each: one vector per frame, shared by its
        tokens, and one learned vector for the caption."""
        if not self.backbone.cfg.adaln:
            return None
        rows, runs = [], []
        if prompt:
            rows.append(self.prompt_mod.expand(b, 1, -1))
            runs.append((1, self.cfg.prompt_len))
        for t in times:
            rows.append(self.time_cond(t))
            runs.append((t.shape[1], self.cfg.tokens_per_frame))
        return nn.functional.silu(torch.cat([r.float() for r in rows], dim=1)), tuple(runs)

    def embed_prompt(self, text: torch.Tensor) -> torch.Tensor:
        """Caption word ids (B, prompt_len) -> (B, prompt_len, d)."""
        return self.backbone.embed(text)

    def velocity(self, hidden: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Final hidden states of frames at times t (B, F) -> velocity (B, F, C, H, W); with adaLN the
        times scale and shift them first (DiT's final layer)."""
        if self.backbone.cfg.adaln:
            mod = self.final_ada(nn.functional.silu(self.time_cond(t)))  # (B, F, 2d)
            shift, scale = expand_runs(mod, ((t.shape[1], self.cfg.tokens_per_frame),)).chunk(2, dim=-1)
            hidden = hidden * (1 + scale) + shift
        return self.unpatchify(self.head(hidden), t.shape[1])

    # --- passes -------------------------------------------------------------------------------
    def forward(self, text: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Whole sequence without a cache (training, and the recompute reference).

        text (B, P) ids; x (B, F, C, H, W) latents (noisy where t > 0); t (B, F) times, equal
        within each block. Returns the velocity prediction (B, F, C, H, W).
        """
        h = torch.cat([self.embed_prompt(text), self.embed_frames(x, t)], dim=1)
        pos = torch.arange(h.shape[1], device=h.device).expand(h.shape[0], -1)
        out = self.backbone(None, pos=pos, embeds=h, head=False, mod=self.modulation(x.shape[0], True, t))
        return self.velocity(out[:, self.cfg.prompt_len:], t)

    def clean_copy_mask(self, frames: int, device=None) -> torch.Tensor:
        """The attention mask (1, 1, T, T) of :meth:`forward_clean_copy`'s sequence (caption, clean
        frames, noisy frames): the caption and clean blocks read as in :meth:`forward`; noisy block
        k reads the caption, the clean blocks before k and itself, never another noisy block
        (ACDiT's skip-causal attention mask)."""
        p, n = self.cfg.prompt_len, frames * self.cfg.tokens_per_frame
        ids = self.backbone.block_ids(torch.arange(p + n, device=device))  # caption 0, then blocks 1..
        q = torch.cat([ids, ids[p:]])  # block of every query (and key): caption, clean copy, noisy copy
        noisy = torch.arange(p + 2 * n, device=device) >= p + n
        clean_key = ~noisy[None, :] & (q[None, :] <= q[:, None]) & ~(noisy[:, None] & (q[None, :] == q[:, None]))
        noisy_key = noisy[None, :] & noisy[:, None] & (q[None, :] == q[:, None])
        return (clean_key | noisy_key)[None, None]

    def forward_clean_copy(self, text: torch.Tensor, x0: torch.Tensor, t0: torch.Tensor, x: torch.Tensor,
                           t: torch.Tensor) -> torch.Tensor:
        """Every block denoised at once, each reading clean blocks before it, as generation does.

        The sequence is the caption, the clean frames x0 (B, F, C, H, W) at times t0 (B, F; 0, or
        the light context noise) and the noisy frames x at times t, each noisy frame at its clean
        twin's position (the same RoPE), under :meth:`clean_copy_mask`. Twice :meth:`forward`'s
        tokens, and every noisy block gets the context it has in generation, where :meth:`forward`
        gives a block noisy blocks before it. Returns the velocity for x (B, F, C, H, W).
        """
        b, f = x.shape[:2]
        h = torch.cat([self.embed_prompt(text), self.embed_frames(x0, t0), self.embed_frames(x, t)], dim=1)
        pos = torch.arange(self.cfg.prompt_len + f * self.cfg.tokens_per_frame, device=h.device)
        pos = torch.cat([pos, pos[self.cfg.prompt_len:]]).expand(b, -1)
        out = self.backbone(None, pos=pos, embeds=h, head=False, attn_mask=self.clean_copy_mask(f, h.device),
                            mod=self.modulation(b, True, t0, t))
        return self.velocity(out[:, self.cfg.prompt_len + f * self.cfg.tokens_per_frame:], t)

    def new_cache(self, batch: int, context_frames: int) -> KVCache:
        """A cache for the caption plus ``context_frames`` frames plus the block being denoised."""
        tpf, fb = self.cfg.tokens_per_frame, self.cfg.block_frames
        ctx_blocks = -(-context_frames // fb)
        return self.backbone.new_cache(batch, self.cfg.prompt_len + (ctx_blocks + 1) * fb * tpf)

    def prefill(self, text: torch.Tensor, cache: KVCache) -> None:
        """Write the caption (B, P) into an empty cache."""
        b = text.shape[0]
        pos = torch.arange(self.cfg.prompt_len, device=text.device).expand(b, -1)
        self.backbone(None, pos=pos, cache=cache, embeds=self.embed_prompt(text), head=False, mod=self.modulation(b, True))

    def cached_block(self, x: torch.Tensor, t: torch.Tensor, cache: KVCache, pos: torch.Tensor,
                     commit: bool) -> torch.Tensor:
        """One block (B, Fb, C, H, W) at times t (B, Fb) and positions pos, attending to the cache.

        ``commit=False`` (a denoising step) rolls the cache back afterwards, so every step of a
        block reads the same context; ``commit=True`` keeps the block (a finished, clean block).
        Returns the velocity (B, Fb, C, H, W).
        """
        length = cache.length
        out = self.backbone(None, pos=pos, cache=cache, embeds=self.embed_frames(x, t), head=False,
                            mod=self.modulation(x.shape[0], False, t))
        if not commit:
            cache.truncate(length)
        return self.velocity(out, t)


def load_video_dir(path) -> tuple[VideoDiT, dict]:
    """Load a video model folder (eval mode, CPU, float32) and its config.json."""
    from argen.checkpoints.argen_format import load_folder

    return load_folder(path, "video", VideoModelConfig, VideoDiT, "video model")
