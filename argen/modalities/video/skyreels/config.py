"""The Wan 2.1 transformer's configuration, the families built on it, and how a folder is recognised.

Facts (with their sources):

- The transformer config keys are those of diffusers' ``SkyReelsV2Transformer3DModel`` and
  ``WanTransformer3DModel`` (``diffusers/models/transformers/transformer_skyreels_v2.py``,
  ``transformer_wan.py``, diffusers 0.42): ``num_attention_heads``, ``attention_head_dim``,
  ``ffn_dim``, ``num_layers``, ``patch_size``, ``text_dim``, ``freq_dim``, ``inject_sample_info``...
- The 1.3B shapes: dim 1536, ffn 8960, 12 heads, 30 layers, umT5-XXL text (4096), patch (1, 2, 2)
  (Wan-Video/Wan2.1 ``wan/configs/wan_t2v_1_3B.py``, also in guandeh17/Self-Forcing); the
  SkyReels-V2-DF-1.3B-540P diffusers config adds ``inject_sample_info: true`` (diffusers
  ``scripts/convert_skyreelsv2_to_diffusers.py``).
- Sampling defaults: SkyReels-V2 ``generate_video_df.py`` and README (30 steps, guidance 6.0,
  shift 8.0, 24 fps, 544x960, base 97 frames, overlap 17, ``--ar_step 5 --causal_block_size 5``
  for asynchronous inference, ``--addnoise_condition 20`` for long videos); Wan2.1-T2V-1.3B
  (480x832, 81 frames, 16 fps, guidance 5.0, 50 steps: diffusers ``WanPipeline`` defaults and
  the Wan2.1 README); Self-Forcing ``configs/self_forcing_dmd.yaml`` (blocks of 3 latent frames,
  timesteps 1000/750/500/250 warped through a shift-5 schedule, 21 latent frames, 480x832).
- GPU memory, as published: SkyReels-V2 README "Generating a 540P video using the 1.3B model
  requires approximately 14.7GB peak VRAM"; Wan2.1 README "The T2V-1.3B model requires only
  8.19 GB VRAM" (480P, with model offloading); Self-Forcing README "Nvidia GPU with at least 24 GB
  memory (RTX 4090, A100, and H100 are tested)".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argen.errors import ArgenError

DF_PIPELINES = ("SkyReelsV2DiffusionForcingPipeline", "SkyReelsV2DiffusionForcingVideoToVideoPipeline",
                "SkyReelsV2DiffusionForcingImageToVideoPipeline")
WAN_PIPELINES = ("WanPipeline",)
TRANSFORMERS = ("SkyReelsV2Transformer3DModel", "WanTransformer3DModel")


@dataclass
class WanConfig:
    """The transformer's shapes (from the diffusers ``transformer/config.json``)."""

    in_channels: int = 16
    out_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    heads: int = 12
    head_dim: int = 128
    ffn_dim: int = 8960
    layers: int = 30
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    cross_attn_norm: bool = True
    rope_max_seq_len: int = 1024
    inject_sample_info: bool = False  # the fps embedding of SkyReels-V2-DF-1.3B
    # the times' sinusoid in float64 (SkyReels' get_1d_sincos_pos_embed_from_grid, the original
    # Wan code's sinusoidal_embedding_1d) or float32 (diffusers' Wan ``Timesteps``)
    time_f64: bool = True

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Head channels turned by time, rows and columns (diffusers' ``SkyReelsV2RotaryPosEmbed``)."""
        hw = 2 * (self.head_dim // 6)
        return self.head_dim - 2 * hw, hw, hw

    @classmethod
    def from_diffusers(cls, d: dict[str, Any]) -> WanConfig:
        """From a diffusers transformer config.json; refuses variants this module does not build."""
        name = d.get("_class_name")
        if name not in TRANSFORMERS:
            raise ArgenError(f"transformer class {name!r} is not a Wan 2.1 text-to-video transformer",
                             hint=f"expected one of {', '.join(TRANSFORMERS)}")
        if d.get("image_dim") or d.get("added_kv_proj_dim") or d.get("pos_embed_seq_len"):
            raise ArgenError("image-conditioned Wan transformers (I2V, FLF2V) are not supported",
                             hint="use a text-to-video or diffusion-forcing model")
        if d.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
            raise ArgenError(f"qk_norm {d.get('qk_norm')!r} is not supported", hint="Wan 2.1 uses rms_norm_across_heads")
        patch = tuple(d.get("patch_size", (1, 2, 2)))
        return cls(in_channels=d.get("in_channels", 16), out_channels=d.get("out_channels") or d.get("in_channels", 16),
                   patch=patch, heads=d.get("num_attention_heads", 12), head_dim=d.get("attention_head_dim", 128),
                   ffn_dim=d.get("ffn_dim", 8960), layers=d.get("num_layers", 30), text_dim=d.get("text_dim", 4096),
                   freq_dim=d.get("freq_dim", 256), eps=d.get("eps", 1e-6), cross_attn_norm=d.get("cross_attn_norm", True),
                   rope_max_seq_len=d.get("rope_max_seq_len", 1024),
                   inject_sample_info=bool(d.get("inject_sample_info", False)),
                   time_f64=name == "SkyReelsV2Transformer3DModel")


@dataclass
class Family:
    """A model family on the Wan backbone: how it samples by default and what it can do."""

    name: str
    size: tuple[int, int]  # (height, width) it was trained at
    fps: float
    window: int  # video frames one window holds (base_num_frames)
    overlap: int  # video frames of history a continuation window starts from
    steps: int
    cfg: float
    shift: float | None  # flow shift of the scheduler (None: the folder's scheduler config)
    block: int  # latent frames per causal block (1: full attention across frames)
    ar_step: int  # how many steps each block lags the one before (diffusion forcing)
    addnoise: float  # noise level (0..1000 timestep units) put on the history frames
    causal: bool  # whether it can extend clips block by block
    gpu_memory: str  # published figure, for --help and the README
    defaults: dict[str, Any] = field(default_factory=dict)


FAMILIES = {
    "skyreels-v2-df": Family("skyreels-v2-df", (544, 960), 24.0, 97, 17, 30, 6.0, None, 5, 5, 20.0, True,
                             "about 14.7 GB peak at 540P (SkyReels-V2 README, 1.3B)"),
    "wan2.1-t2v": Family("wan2.1-t2v", (480, 832), 16.0, 81, 0, 50, 5.0, None, 1, 0, 0.0, False,
                         "8.19 GB at 480P with offloading (Wan2.1 README, T2V-1.3B)"),
    "self-forcing": Family("self-forcing", (480, 832), 16.0, 81, 33, 4, 1.0, 5.0, 3, 4, 0.0, True,
                           "a GPU with at least 24 GB (Self-Forcing README)"),
}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArgenError(f"{path} not found", hint="pass a diffusers pipeline folder (model_index.json, transformer/, vae/, ...)") from None
    except ValueError:
        raise ArgenError(f"{path} is not valid JSON", hint="the folder may be damaged; download it again") from None


def matches(config: dict[str, Any]) -> str | None:
    """The family of a folder from its ``model_index.json`` (or a transformer ``config.json``):
    ``"skyreels-v2-df"``, ``"wan2.1-t2v"`` or None. A Wan folder becomes ``"self-forcing"`` only
    when Self-Forcing weights are passed with it (see ``SkyReelsVideo.from_pretrained``)."""
    name = config.get("_class_name")
    if name in DF_PIPELINES or name == "SkyReelsV2Transformer3DModel":
        return "skyreels-v2-df"
    if name in WAN_PIPELINES or name == "WanTransformer3DModel":
        return "wan2.1-t2v"
    return None
