"""Weights into :class:`~argen.modalities.video.skyreels.transformer.WanModel`: from a diffusers
``transformer/`` folder (``SkyReelsV2Transformer3DModel`` / ``WanTransformer3DModel`` layout), or
from a checkpoint in the original Wan layout (Self-Forcing's ``generator`` / ``generator_ema``).

Key names are those of diffusers 0.42 (``transformer_skyreels_v2.py``, ``transformer_wan.py``).
The original Wan layout (``wan/modules/model.py`` and ``causal_model.py`` in Wan2.1 and
guandeh17/Self-Forcing: ``self_attn.q``, ``cross_attn.k``, ``ffn.0``, ``modulation``, ``head.head``,
and ``norm3`` for the cross-attention norm) is first renamed by diffusers' own
``convert_wan_transformer_to_diffusers`` (``diffusers/loaders/single_file_utils.py``), so only one
mapping to argen exists here. Self-Forcing keeps its model under ``model.`` inside the generator
(``WanDiffusionWrapper.model``; ``inference.py`` loads ``state_dict['generator_ema']``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from argen.errors import ArgenError
from argen.modalities.video.skyreels.config import WanConfig, read_json
from argen.modalities.video.skyreels.transformer import WanModel


def rope_order(head_dim: int) -> torch.Tensor:
    """Channel order that turns Wan's interleaved RoPE pairs (2i, 2i+1) into argen's half-split
    pairs (i, i + hd/2): the even channels, then the odd ones."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def _per_head(t: torch.Tensor, heads: int, order: torch.Tensor) -> torch.Tensor:
    """Permute the channels of every head in a (H * hd, ...) tensor."""
    return t.reshape(heads, -1, *t.shape[1:])[:, order].reshape(t.shape)


def _mapping(cfg: WanConfig) -> dict[str, str]:
    """argen name -> diffusers name, for every tensor."""
    m = {"patch_in.weight": "patch_embedding.weight", "patch_in.bias": "patch_embedding.bias",
         "head.weight": "proj_out.weight", "head.bias": "proj_out.bias", "head_table": "scale_shift_table"}
    for ours, theirs in (("time_in.0", "condition_embedder.time_embedder.linear_1"),
                         ("time_in.2", "condition_embedder.time_embedder.linear_2"),
                         ("time_proj", "condition_embedder.time_proj"),
                         ("text_in.0", "condition_embedder.text_embedder.linear_1"),
                         ("text_in.2", "condition_embedder.text_embedder.linear_2")):
        for p in ("weight", "bias"):
            m[f"{ours}.{p}"] = f"{theirs}.{p}"
    if cfg.inject_sample_info:
        m["fps_embed.weight"] = "fps_embedding.weight"
        for ours, theirs in (("fps_proj.0", "fps_projection.net.0.proj"), ("fps_proj.2", "fps_projection.net.2")):
            for p in ("weight", "bias"):
                m[f"{ours}.{p}"] = f"{theirs}.{p}"
    for i in range(cfg.layers):
        a, d = f"blocks.{i}.", f"blocks.{i}."
        m[a + "table"] = d + "scale_shift_table"
        pairs = [("attn.q_proj", "attn1.to_q"), ("attn.k_proj", "attn1.to_k"), ("attn.v_proj", "attn1.to_v"),
                 ("attn.o_proj", "attn1.to_out.0"), ("cross.q_proj", "attn2.to_q"), ("cross.k_proj", "attn2.to_k"),
                 ("cross.v_proj", "attn2.to_v"), ("cross.o_proj", "attn2.to_out.0"), ("mlp.up_proj", "ffn.net.0.proj"),
                 ("mlp.down_proj", "ffn.net.2")]
        if cfg.cross_attn_norm:
            pairs.append(("cross_norm", "norm2"))
        for ours, theirs in pairs:
            for p in ("weight", "bias"):
                m[f"{a}{ours}.{p}"] = f"{d}{theirs}.{p}"
        for ours, theirs in (("attn.q_norm", "attn1.norm_q"), ("attn.k_norm", "attn1.norm_k"),
                             ("cross.q_norm", "attn2.norm_q"), ("cross.k_norm", "attn2.norm_k")):
            m[f"{a}{ours}.weight"] = f"{d}{theirs}.weight"
    return m


def convert_state_dict(sd: dict[str, torch.Tensor], cfg: WanConfig) -> dict[str, torch.Tensor]:
    """A diffusers-layout state dict -> argen's; every tensor used, none missing (else an error)."""
    mapping = _mapping(cfg)
    missing = sorted(v for v in mapping.values() if v not in sd)
    unused = sorted(set(sd) - set(mapping.values()))
    if missing or unused:
        raise ArgenError(f"the transformer weights do not match its config: {len(missing)} missing "
                         f"(e.g. {missing[:2]}), {len(unused)} unexpected (e.g. {unused[:2]})",
                         hint="the folder may hold another model or a damaged download")
    order = rope_order(cfg.head_dim)
    out = {}
    for ours, theirs in mapping.items():
        t = sd[theirs]
        if ours == "patch_in.weight":
            t = t.reshape(t.shape[0], -1)  # Conv3d (d, C, pt, ph, pw) with stride = kernel: a Linear
        elif ours.endswith(("attn.q_proj.weight", "attn.q_proj.bias", "attn.k_proj.weight", "attn.k_proj.bias",
                            "attn.q_norm.weight", "attn.k_norm.weight")) and ".cross." not in ours:
            t = _per_head(t, cfg.heads, order)
        out[ours] = t
    return out


def load_state_dict_file(folder: Path) -> dict[str, torch.Tensor]:
    """All safetensors of a diffusers component folder (sharded or not)."""
    from safetensors.torch import load_file

    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(read_json(index)["weight_map"].values()))
    else:
        files = [p.name for p in sorted(folder.glob("*.safetensors"))]
    if not files:
        raise ArgenError(f"{folder} holds no .safetensors weights",
                         hint="download the diffusers variant of the model (its transformer/ has safetensors)")
    sd: dict[str, torch.Tensor] = {}
    for name in files:
        sd.update(load_file(str(folder / name)))
    return sd


def load_transformer(folder: Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                     weights: dict[str, torch.Tensor] | None = None) -> WanModel:
    """A diffusers ``transformer/`` folder (config.json + safetensors) -> WanModel (eval mode);
    ``weights``: a diffusers-layout state dict to use instead of the folder's (Self-Forcing)."""
    cfg = WanConfig.from_diffusers(read_json(folder / "config.json"))
    sd = convert_state_dict(weights if weights is not None else load_state_dict_file(folder), cfg)
    with torch.device("meta"):
        model = WanModel(cfg)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.set_dtype(dtype).to(device).eval()


def self_forcing_state_dict(path: str | Path, ema: bool = True) -> dict[str, torch.Tensor]:
    """A Self-Forcing checkpoint (``torch.save`` of {"generator", "generator_ema", ...}, each the
    ``WanDiffusionWrapper`` state dict) -> the diffusers layout. Read with ``weights_only=True``."""
    from argen.checkpoints.argen_format import check_torch_file

    hint = "pass the Self-Forcing checkpoint, e.g. checkpoints/self_forcing_dmd.pt"
    p = check_torch_file(path, "checkpoint", missing_hint=hint, hint=hint)
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corrupt file reads the same to a user
        raise ArgenError(f"{p} is not a tensor-only checkpoint ({type(e).__name__})",
                         hint="only plain state dicts are read (torch.load weights_only=True)") from None
    key = "generator_ema" if ema and "generator_ema" in ckpt else "generator"
    sd = ckpt.get(key) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not any(k.startswith("model.blocks.0.self_attn.") for k in sd):
        raise ArgenError(f"{p} is not a Self-Forcing checkpoint (no {key}.model.blocks.*.self_attn weights)",
                         hint="expected e.g. gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt")
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    original = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    return convert_wan_transformer_to_diffusers(original)
