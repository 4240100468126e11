"""BD3-LM's and MDLM's DiT backbone on argen's transformer, and their Hugging Face folders.

The DiT (kuleshov-group/bd3lms ``models/hf/modeling_bd3lm.py``; ``kuleshov-group/mdlm-owt`` uses
the same layers with full attention) is a pre-norm transformer with:

- LayerNorm without bias, rotary positions over the whole head (half-split, base 10000), one
  fused bias-free ``attn_qkv`` and ``attn_out``, a GELU (tanh) MLP of 4x width with biases;
- adaptive LayerNorm on the noise level: ``c = silu(sigma_map(sigma))`` (a sinusoidal embedding of
  256 frequencies through a two-layer MLP to ``cond_dim``) gives every block its six modulations
  (shift, scale, gate for attention, then for the MLP), zero at initialisation; the released
  checkpoints are trained with ``time_conditioning: False``, so ``sigma`` is always 0;
- an output layer: LayerNorm, its own adaLN shift and scale, a linear head with bias;
- vocabulary: GPT-2's 50257 tokens plus the mask token 50257 (``push_to_hf.py``:
  ``vocab_size = tokenizer.vocab_size + 1``), context ``model_length`` 1024.

argen's :class:`Transformer` holds the blocks (``adaln`` with ``adaln_dim = cond_dim``, block-causal
masks from positions with ``block_size``; an MDLM checkpoint is one block of ``model_length``);
this module adds the noise embedding and the output layer. The transformer's own head is tied to
its embedding and never used (the DiT's head has a bias and a modulation).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import TransformerConfig
from argen.engine.kv_cache import KVCache
from argen.engine.transformer import Transformer
from argen.errors import ArgenError

FAMILY_TYPES = ("bd3lm", "mdlm")  # config.json model_type of the released checkpoints


class TimestepEmbedder(nn.Module):
    """Noise level (B,) -> (B, cond_dim): cos/sin of 256 frequencies, then Linear-SiLU-Linear."""

    def __init__(self, cond_dim: int, freqs: int = 256) -> None:
        super().__init__()
        self.freqs = freqs
        self.mlp = nn.Sequential(nn.Linear(freqs, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freqs // 2
        f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * f[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))  # (B, cond_dim)


class BD3LMDiT(nn.Module):
    """The DiT: call like argen's transformer, ``(ids, pos=, cache=, num_logits=, attn_mask=)``
    -> logits (B, N, V); ``sigma`` (B,) is the noise level (ignored without time conditioning)."""

    def __init__(self, cfg: TransformerConfig, cond_dim: int, time_conditioning: bool = False) -> None:
        super().__init__()
        self.backbone = Transformer(cfg)
        self.cfg = cfg
        self.time_conditioning = time_conditioning
        self.sigma_map = TimestepEmbedder(cond_dim) if cfg.adaln else None
        self.final_ada = nn.Linear(cond_dim, 2 * cfg.d_model) if cfg.adaln else None
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def new_cache(self, batch: int, capacity: int | None = None) -> KVCache:
        return self.backbone.new_cache(batch, capacity)

    def forward(self, idx: torch.Tensor, pos: torch.Tensor | None = None, cache: KVCache | None = None,
                num_logits: int | None = None, attn_mask: torch.Tensor | None = None,
                sigma: torch.Tensor | None = None, head: bool = True) -> torch.Tensor:
        """``head=False``: the modulated final states (B, N, C) that :attr:`head` maps to logits."""
        b, t = idx.shape
        mod = c = None
        if self.sigma_map is not None:
            if sigma is None or not self.time_conditioning:
                sigma = torch.zeros(b, device=idx.device)
            c = F.silu(self.sigma_map(sigma))  # (B, cond_dim): one vector for every token of a row
            mod = (c[:, None], ((1, t),))
        h = self.backbone(idx, pos=pos, cache=cache, num_logits=num_logits, attn_mask=attn_mask, head=False,
                          mod=mod)  # (B, N, C), after the final LayerNorm
        if c is not None:
            shift, scale = self.final_ada(c)[:, None].chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        return self.head(h) if head else h


# ----------------------------------------------------------------------------- Hugging Face folders

def dit_config(hf: dict[str, Any]) -> tuple[TransformerConfig, int, bool]:
    """(transformer config, cond_dim, time_conditioning) from a BD3-LM / MDLM config.json.

    Defaults are those of ``models/hf/configuration_bd3lm.py`` (BD3LMConfig)."""
    mt = hf.get("model_type")
    if mt not in FAMILY_TYPES:
        raise ArgenError(f"not a BD3-LM or MDLM config (model_type {mt!r})", hint="expected model_type bd3lm or mdlm")
    if hf.get("causal", False):
        raise ArgenError("this BD3-LM checkpoint is causal (an autoregressive baseline), not a block-diffusion model",
                         hint="block diffusion needs a model trained with BD3-LM's block mask")
    if hf.get("time_conditioning", False):
        raise ArgenError("time-conditioned BD3-LM/MDLM checkpoints are not supported",
                         hint="the released kuleshov-group checkpoints use time_conditioning: false")
    d, heads = int(hf.get("hidden_dim", 768)), int(hf.get("n_heads", 12))
    length = int(hf.get("model_length", 1024))
    # MDLM, and BD3-LM without cross_attn, attend over the whole sequence: one block
    block = int(hf.get("block_size", 1)) if mt == "bd3lm" and hf.get("cross_attn", True) else length
    adaln = bool(hf.get("adaln", True))
    cond_dim = int(hf.get("cond_dim", 129))
    cfg = TransformerConfig(
        vocab_size=int(hf.get("vocab_size", 50258)), n_layer=int(hf.get("n_blocks", 12)), n_head=heads,
        d_model=d, d_ff=4 * d, max_seq_len=length, pos_emb="rope", rope_theta=10000.0, norm="layernorm",
        norm_eps=1e-5, norm_bias=False, mlp="gelu_tanh", mlp_bias=True, qkv_bias=False, out_bias=False,
        tie_embeddings=True, block_size=block, adaln=adaln, adaln_dim=cond_dim if adaln else None,
        extra={"hf_model_type": mt})
    return cfg, cond_dim, False


_BLOCK = re.compile(r"backbone\.blocks\.(\d+)\.(.+)")
_BLOCK_NAMES = {"norm1.weight": "attn_norm.weight", "norm2.weight": "mlp_norm.weight",
                "attn_out.weight": "attn.o_proj.weight", "mlp.0.weight": "mlp.up_proj.weight",
                "mlp.0.bias": "mlp.up_proj.bias", "mlp.2.weight": "mlp.down_proj.weight",
                "mlp.2.bias": "mlp.down_proj.bias", "adaLN_modulation.weight": "ada.weight",
                "adaLN_modulation.bias": "ada.bias"}
_TOP_NAMES = {"backbone.vocab_embed.embedding": "backbone.embed.weight",
              "backbone.output_layer.norm_final.weight": "backbone.norm.weight",
              "backbone.output_layer.linear.weight": "head.weight", "backbone.output_layer.linear.bias": "head.bias",
              "backbone.output_layer.adaLN_modulation.weight": "final_ada.weight",
              "backbone.output_layer.adaLN_modulation.bias": "final_ada.bias",
              "backbone.sigma_map.mlp.0.weight": "sigma_map.mlp.0.weight",
              "backbone.sigma_map.mlp.0.bias": "sigma_map.mlp.0.bias",
              "backbone.sigma_map.mlp.2.weight": "sigma_map.mlp.2.weight",
              "backbone.sigma_map.mlp.2.bias": "sigma_map.mlp.2.bias"}
# buffers the released files carry: the rotary table (recomputed) and BD3-LM's clipped noise range
# for training (sampling_eps_min/max, unused when sampling)
_IGNORED = {"backbone.rotary_emb.inv_freq", "sampling_eps_min", "sampling_eps_max"}


def convert_state(state: dict[str, torch.Tensor], d_model: int) -> dict[str, torch.Tensor]:
    """Rename a BD3-LM/MDLM state dict into :class:`BD3LMDiT`'s names; the fused ``attn_qkv``
    (3d, d) splits into q, k, v (rows in that order, heads contiguous within each)."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, t in state.items():
        m = _BLOCK.fullmatch(key)
        if key in _IGNORED:
            continue
        if key in _TOP_NAMES:
            out[_TOP_NAMES[key]] = t
        elif m and m[2] == "attn_qkv.weight":
            for part, chunk in zip("qkv", t.split(d_model, dim=0)):
                out[f"backbone.layers.{m[1]}.attn.{part}_proj.weight"] = chunk.contiguous()
        elif m and m[2] in _BLOCK_NAMES:
            out[f"backbone.layers.{m[1]}.{_BLOCK_NAMES[m[2]]}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ArgenError(f"{len(unknown)} unexpected weight(s) in the BD3-LM checkpoint, e.g. {unknown[:3]}",
                         hint="the checkpoint has parts argen does not implement (or its config.json is wrong)")
    return out


def official_shapes(hf: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The tensors (name -> shape) a BD3-LM checkpoint with this config.json holds, in the
    official key layout (the parameters and persistent buffers of ``modeling_bd3lm.BD3LM``)."""
    cfg, cond, _ = dit_config(hf)
    d, v = cfg.d_model, cfg.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"backbone.vocab_embed.embedding": (v, d),
                                          "backbone.rotary_emb.inv_freq": (cfg.head_dim // 2,),
                                          "backbone.output_layer.norm_final.weight": (d,),
                                          "backbone.output_layer.linear.weight": (v, d),
                                          "backbone.output_layer.linear.bias": (v,)}
    if cfg.adaln:
        shapes.update({"backbone.sigma_map.mlp.0.weight": (cond, 256), "backbone.sigma_map.mlp.0.bias": (cond,),
                       "backbone.sigma_map.mlp.2.weight": (cond, cond), "backbone.sigma_map.mlp.2.bias": (cond,),
                       "backbone.output_layer.adaLN_modulation.weight": (2 * d, cond),
                       "backbone.output_layer.adaLN_modulation.bias": (2 * d,)})
    for i in range(cfg.n_layer):
        p = f"backbone.blocks.{i}."
        shapes.update({p + "norm1.weight": (d,), p + "attn_qkv.weight": (3 * d, d), p + "attn_out.weight": (d, d),
                       p + "norm2.weight": (d,), p + "mlp.0.weight": (4 * d, d), p + "mlp.0.bias": (4 * d,),
                       p + "mlp.2.weight": (d, 4 * d), p + "mlp.2.bias": (d,)})
        if cfg.adaln:
            shapes.update({p + "adaLN_modulation.weight": (6 * d, cond), p + "adaLN_modulation.bias": (6 * d,)})
    if hf.get("model_type") == "bd3lm" and hf.get("var_min", True):
        shapes.update({"sampling_eps_min": (), "sampling_eps_max": ()})
    return shapes


def build_dit(hf: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> BD3LMDiT:
    """A :class:`BD3LMDiT` (CPU, float32, eval) from a config.json dict and an official state dict."""
    from argen.checkpoints.argen_format import check_state

    cfg, cond, timed = dit_config(hf)
    with torch.device("meta"):
        model = BD3LMDiT(cfg, cond, timed)
    model = model.to_empty(device="cpu")
    ours = convert_state({k: v.float() for k, v in state.items()}, cfg.d_model)
    expected = {k: v.shape for k, v in model.state_dict().items() if k != "backbone.lm_head.weight"}
    check_state(ours, expected, source, "config", hint="the config.json and weight files come from different models")
    model.load_state_dict(ours, strict=False, assign=True)
    model.backbone.lm_head.weight = model.backbone.embed.weight  # tied, unused
    from argen.engine.transformer import rope_freqs

    model.backbone.inv_freq = rope_freqs(cfg)
    return model.eval()
