"""Load FoundationVision/VAR's released checkpoints and convert them to an argen model folder.

The release (https://huggingface.co/FoundationVision/var) holds plain state dicts:
``vae_ch160v4096z32.pth`` for the VQ-VAE and ``var_d16.pth``, ``var_d20.pth``, ``var_d24.pth``,
``var_d30.pth`` for the transformers. They are opened with ``torch.load(weights_only=True)``
(refused if that fails) or, once converted, as safetensors. The key layout is the reference's
(FoundationVision/VAR ``models/var.py``, ``models/vqvae.py``), so no key is renamed; the
transformer's config is read off the tensor shapes.

An argen VAR folder holds ``config.json`` (``{"format": "argen", "modality": "image",
"family": "var", "var": {...}, "vae": {...}}``), ``model.safetensors`` and ``vae.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from argen import __version__
from argen.checkpoints.argen_format import check_state, read_json, read_safetensors, read_torch_file, write_safetensors
from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError
from argen.io.atomic import atomic_path
from argen.modalities.image.var.model import VAR, VARConfig
from argen.modalities.image.var.vqvae import VQVAE, VQVAEConfig

M = TypeVar("M", bound=nn.Module)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a foreign ``.pth/.pt/.bin`` (opened with
    ``weights_only=True``; a file that needs pickled code is refused with an ArgenError)."""
    path = Path(path)
    return read_safetensors(path) if path.suffix == ".safetensors" else read_torch_file(path)


def var_config_from_state(state: dict[str, torch.Tensor], patch_nums: list[int] | None = None) -> VARConfig:
    """The transformer's config read off a state dict's shapes (depth = number of blocks)."""
    try:
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        rows, width = state["class_emb.weight"].shape
        heads = state["blocks.0.attn.scale_mul_1H11"].shape[1] if "blocks.0.attn.scale_mul_1H11" in state else None
        cfg = VARConfig(
            depth=depth, width=width, num_heads=heads or width // 64,
            mlp_ratio=state["blocks.0.ffn.fc1.weight"].shape[0] / width, num_classes=rows - 1,
            vocab_size=state["head.weight"].shape[0], vae_channels=state["word_embed.weight"].shape[1],
            shared_aln="blocks.0.ada_gss" in state, attn_l2_norm=heads is not None,
            **({"patch_nums": patch_nums} if patch_nums else {}))
    except (KeyError, ValueError, IndexError) as e:
        raise ArgenError(f"not a VAR transformer state dict (no {e})",
                         hint="expected var_d16.pth ... var_d30.pth from FoundationVision/var") from None
    if state["pos_1LC"].shape[1] != cfg.seq_len:
        raise ArgenError(f"the checkpoint has {state['pos_1LC'].shape[1]} positions, patch_nums "
                         f"{cfg.patch_nums} make {cfg.seq_len}", hint="pass the patch_nums the model was trained with")
    return cfg


def build_strict(make: Callable[[], M], state: dict[str, torch.Tensor], source: str) -> M:
    """Build a module on the meta device and load ``state`` into it with strict key and shape
    matching (an ArgenError, not a traceback, when the file is another model)."""
    with torch.device("meta"):
        model = make()
    check_state(state, {k: v.shape for k, v in model.state_dict().items()}, source, "model",
                hint="the files come from different models or releases")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                          strict=True, assign=True)
    return model.eval()


def load_var_vae(path: str | Path, cfg: VQVAEConfig | None = None) -> VQVAE:
    """The VQ-VAE from ``vae_ch160v4096z32.pth`` or a safetensors file (CPU, float32, eval)."""
    cfg = cfg or VQVAEConfig()
    state = read_state(path)
    hits = state.get("quantize.ema_vocab_hit_SV")
    if hits is not None and hits.shape != (len(cfg.patch_nums), cfg.vocab_size):
        # a training statistic sized by the training run's scales; the reference's own
        # VQVAE.load_state_dict replaces it the same way
        state["quantize.ema_vocab_hit_SV"] = torch.zeros(len(cfg.patch_nums), cfg.vocab_size)
    return build_strict(lambda: VQVAE(cfg), state, str(path))


def load_var_model(path: str | Path, cfg: VARConfig | None = None, patch_nums: list[int] | None = None) -> VAR:
    """The transformer from ``var_d{16,20,24,30}.pth`` or a safetensors file (CPU, float32,
    eval); unless ``cfg`` is given it is read off the shapes, with ``patch_nums`` (default: the
    released 256x256 scales)."""
    state = read_state(path)
    cfg = cfg or var_config_from_state(state, patch_nums)
    return build_strict(lambda: VAR(cfg), state, str(path))




def convert_var(src_vae: str | Path, src_var: str | Path, out_dir: str | Path, *,
                vae_cfg: VQVAEConfig | None = None, dtype: torch.dtype = torch.float32,
                name: str | None = None) -> Path:
    """Convert a released VQ-VAE + transformer pair to an argen folder; returns ``out_dir``.

    Both files are loaded strictly first (a wrong or truncated file fails before anything is
    written); each output file is written atomically. config.json records the source files'
    names and sha256. ``vae_cfg`` defaults to the released ``vae_ch160v4096z32``; the
    transformer's config is read off its shapes, with the VAE's scales.
    """
    src_vae, src_var, out = Path(src_vae), Path(src_var), Path(out_dir)
    vae = load_var_vae(src_vae, vae_cfg)
    var = load_var_model(src_var, patch_nums=vae.cfg.patch_nums)
    if var.cfg.vocab_size != vae.cfg.vocab_size or var.cfg.vae_channels != vae.cfg.z_channels:
        raise ArgenError(f"{src_var} expects a {var.cfg.vocab_size} x {var.cfg.vae_channels} codebook, "
                         f"{src_vae} has {vae.cfg.vocab_size} x {vae.cfg.z_channels}", hint="pair each VAR with its own VAE")
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "vae.safetensors", vae.state_dict(), dtype)
    write_safetensors(out / "model.safetensors", var.state_dict(), dtype)
    meta: dict[str, Any] = {
        "format": "argen", "argen_version": __version__, "modality": "image", "family": "var",
        "name": name or f"var-d{var.cfg.depth}", "image_size": vae.cfg.image_size,
        "var": var.cfg.to_dict(), "vae": vae.cfg.to_dict(),
        "source": {p.name: {"sha256": sha256_file(p)} for p in (src_vae, src_var)},
    }
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_var_dir(path: str | Path) -> tuple[VQVAE, VAR, dict[str, Any]]:
    """Load a folder written by :func:`convert_var`: (vae, var, config.json contents)."""
    path = Path(path)
    meta = read_json(path / "config.json")
    try:
        vae_cfg, var_cfg = VQVAEConfig.from_dict(meta["vae"]), VARConfig.from_dict(meta["var"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArgenError(f"{path / 'config.json'}: invalid VAR config ({e})",
                         hint="the file is corrupt or from another tool") from None
    vae = load_var_vae(path / "vae.safetensors", vae_cfg)
    var = load_var_model(path / "model.safetensors", var_cfg)
    return vae, var, meta


def convert_files(sources: list[Path], out: Path, name: str | None = None, **options) -> Path:
    """``argen weights convert --family var VAE DECODER``: the VAE's file, then the transformer's."""
    from argen.errors import UsageError

    if len(sources) != 2:
        raise UsageError(f"var conversion takes two files (the tokenizer's, then the transformer's), got {len(sources)}",
                         hint="e.g. vae_ch160v4096z32.pth var_d16.pth")
    if "vae" in options:  # a registry entry may describe a VAE other than the released one
        options["vae_cfg"] = VQVAEConfig.from_dict(options.pop("vae"))
    return convert_var(*sources, out, **options)
