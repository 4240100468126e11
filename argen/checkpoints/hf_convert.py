"""Load Hugging Face transformers checkpoint folders (Llama, Qwen2, GPT-2) into argen's backbone.

A Hugging Face folder holds config.json (with a ``model_type``), the weights as model.safetensors,
sharded safetensors (model.safetensors.index.json + shards) or, in older uploads,
pytorch_model.bin, and usually tokenizer.json and generation_config.json. The config is
translated into a :class:`TransformerConfig`, the tensors are renamed (and, for GPT-2, reshaped)
into argen's names, and the model is built by :func:`checkpoint.build_model`.

Config field names, their defaults and the weight key names are as in transformers'
``configuration_llama.py``/``modeling_llama.py``, ``configuration_qwen2.py``/``modeling_qwen2.py``,
``configuration_gpt2.py``/``modeling_gpt2.py`` and ``modeling_rope_utils.py`` (transformers 5).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from argen.checkpoints.argen_format import build_model, read_json, read_safetensors, read_torch_file
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import ArgenError

SUPPORTED = ("llama", "qwen2", "gpt2")


def is_hf_folder(path: str | Path) -> bool:
    """True for a folder whose config.json is a JSON object with a ``model_type`` (argen's own
    config.json has ``"format": "argen"`` instead)."""
    try:
        data = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "model_type" in data


# ----------------------------------------------------------------------------- config

def _need(hf: dict[str, Any], key: str) -> Any:
    if hf.get(key) is None:
        raise ArgenError(f"Hugging Face config.json has no {key!r} (model_type {hf.get('model_type')!r})",
                         hint="the config.json is incomplete; re-download it from the model's page")
    return hf[key]


def _rope(hf: dict[str, Any], max_pos: int) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, rope_scaling) from either config form.

    Old form: top-level ``rope_theta`` and an optional ``rope_scaling`` dict keyed by ``type`` or
    ``rope_type``. transformers 5 form: one ``rope_parameters`` dict holding ``rope_type``,
    ``rope_theta`` and the scaling fields.
    """
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise ArgenError(f"unreadable RoPE settings {params!r} in config.json", hint="expected a JSON object")
    theta = float(params.get("rope_theta") or hf.get("rope_theta") or 10000.0)  # HF's default_theta
    kind = params.get("rope_type", params.get("type")) or "default"
    if any(isinstance(v, dict) for v in params.values()):  # per-layer-type RoPE (e.g. Gemma 3)
        raise ArgenError("per-layer RoPE settings in config.json are not supported", hint="argen uses one RoPE for all layers")
    if float(params.get("partial_rotary_factor") or hf.get("partial_rotary_factor") or 1.0) != 1.0:
        raise ArgenError("partial rotary embeddings (partial_rotary_factor < 1) are not supported",
                         hint="argen rotates the whole head; this checkpoint cannot be loaded")
    if kind == "default":
        return theta, None
    if kind == "linear":
        return theta, {"rope_type": "linear", "factor": float(params["factor"])}
    if kind == "llama3":
        try:
            return theta, {
                "rope_type": "llama3", "factor": float(params["factor"]),
                "low_freq_factor": float(params["low_freq_factor"]),
                "high_freq_factor": float(params["high_freq_factor"]),
                # transformers falls back to max_position_embeddings (modeling_rope_utils.py), not 8192
                "original_max_position_embeddings": int(params.get("original_max_position_embeddings") or max_pos),
            }
        except KeyError as e:
            raise ArgenError(f"llama3 RoPE scaling in config.json lacks {e.args[0]!r}",
                             hint="the config.json is incomplete; re-download it") from None
    raise ArgenError(f"unsupported RoPE type {kind!r} in config.json",
                     hint="argen supports the rope types default, linear and llama3")


def _llama_like(hf: dict[str, Any], mt: str) -> dict[str, Any]:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ArgenError(f"{mt} checkpoint with hidden_act {act!r} is not supported", hint="argen's SwiGLU uses silu")
    if hf.get("use_sliding_window"):
        raise ArgenError("sliding-window attention (use_sliding_window: true) is not supported",
                         hint="argen attends to the whole context; use a checkpoint without a sliding window")
    n_head = int(_need(hf, "num_attention_heads"))
    d_model = int(_need(hf, "hidden_size"))
    # class defaults from configuration_llama.py / configuration_qwen2.py
    max_pos = int(hf.get("max_position_embeddings") or (2048 if mt == "llama" else 32768))
    theta, scaling = _rope(hf, max_pos)
    if mt == "qwen2":  # modeling_qwen2.py: q/k/v always carry a bias, o_proj never does
        qkv_bias, out_bias = True, False
    else:  # modeling_llama.py: attention_bias applies to all four projections
        qkv_bias = out_bias = bool(hf.get("attention_bias", False))
    return dict(
        vocab_size=int(_need(hf, "vocab_size")), n_layer=int(_need(hf, "num_hidden_layers")),
        n_head=n_head, n_kv_head=int(hf.get("num_key_value_heads") or n_head), d_model=d_model,
        head_dim=int(hf.get("head_dim") or d_model // n_head), d_ff=int(_need(hf, "intermediate_size")),
        max_seq_len=max_pos, pos_emb="rope", rope_theta=theta, rope_scaling=scaling, norm="rmsnorm",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), mlp="swiglu", qkv_bias=qkv_bias, out_bias=out_bias,
        mlp_bias=bool(hf.get("mlp_bias", False)) if mt == "llama" else False,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
    )


# activation names as in transformers' activations.py; gelu_new and gelu_pytorch_tanh are both
# the tanh approximation, "gelu" is the exact erf form
_GPT2_ACTS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def _gpt2(hf: dict[str, Any]) -> dict[str, Any]:
    refused = {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True,
               "add_cross_attention": True, "scale_attn_weights": False}
    for key, bad in refused.items():
        if hf.get(key, not bad) == bad:
            raise ArgenError(f"GPT-2 checkpoint with {key}={json.dumps(bad)} is not supported",
                             hint="argen implements plain GPT-2 attention only")
    act = hf.get("activation_function", "gelu_new")
    if act not in _GPT2_ACTS:
        raise ArgenError(f"GPT-2 activation_function {act!r} is not supported",
                         hint=f"supported: {', '.join(_GPT2_ACTS)}")
    d_model = int(_need(hf, "n_embd"))
    return dict(
        vocab_size=int(_need(hf, "vocab_size")), n_layer=int(_need(hf, "n_layer")), n_head=int(_need(hf, "n_head")),
        d_model=d_model, d_ff=int(hf.get("n_inner") or 4 * d_model), max_seq_len=int(_need(hf, "n_positions")),
        pos_emb="learned", norm="layernorm", norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
        norm_bias=True, mlp=_GPT2_ACTS[act], qkv_bias=True, out_bias=True, mlp_bias=True,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
    )


def hf_config_to_argen(hf: dict[str, Any], source: str | None = None) -> TransformerConfig:
    """Translate a Hugging Face config.json (as a dict) into a :class:`TransformerConfig`.

    ``cfg.extra`` records ``hf_model_type`` and ``source`` (where the checkpoint came from).
    """
    mt = hf.get("model_type")
    if mt not in SUPPORTED:
        raise ArgenError(f"unsupported Hugging Face model_type {mt!r}", hint=f"argen can load: {', '.join(SUPPORTED)}")
    fields = _gpt2(hf) if mt == "gpt2" else _llama_like(hf, mt)
    try:
        return TransformerConfig(**fields, extra={"hf_model_type": mt, "source": source or "huggingface"})
    except ValueError as e:  # e.g. heads not a multiple of kv heads
        raise ArgenError(f"inconsistent Hugging Face config: {e}", hint="the config.json is corrupt") from None


# ----------------------------------------------------------------------------- weights

_LLAMA_LAYER = {
    "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj",
    "self_attn.o_proj": "attn.o_proj", "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj",
    "mlp.down_proj": "mlp.down_proj", "input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm",
}
_LLAMA_TOP = {"embed_tokens.weight": "embed.weight", "norm.weight": "norm.weight"}
_GPT2_LAYER = {"ln_1": "attn_norm", "ln_2": "mlp_norm", "attn.c_proj": "attn.o_proj",
               "mlp.c_fc": "mlp.up_proj", "mlp.c_proj": "mlp.down_proj"}
_GPT2_TOP = {"wte.weight": "embed.weight", "wpe.weight": "pos_embed.weight",
             "ln_f.weight": "norm.weight", "ln_f.bias": "norm.bias"}
_GPT2_KEY, _LLAMA_KEY = re.compile(r"h\.(\d+)\.(.+)\.(weight|bias)"), re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")
# buffers, not parameters, that older checkpoints saved: GPT-2's causal mask (h.N.attn.bias,
# h.N.attn.masked_bias) and Llama's rotary inverse frequencies (transformers < 4.31)
_GPT2_BUFFERS = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
_LLAMA_BUFFERS = re.compile(r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


def convert_state_dict(model_type: str, hf_state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face state dict into argen's names.

    GPT-2's ``Conv1D`` stores weights as (in, out), the transpose of ``nn.Linear``; its fused
    ``c_attn`` (d_model, 3 * d_model) becomes q/k/v_proj, each (d_model, d_model). Keys may
    carry the wrapper prefix (``model.`` / ``transformer.``) or not (a bare base model).
    Unknown keys raise :class:`ArgenError`; missing ones are caught by ``build_model``.
    """
    gpt2 = model_type == "gpt2"
    prefix, top, per_layer, layer_key, buffers = (
        ("transformer.", _GPT2_TOP, _GPT2_LAYER, _GPT2_KEY, _GPT2_BUFFERS) if gpt2
        else ("model.", _LLAMA_TOP, _LLAMA_LAYER, _LLAMA_KEY, _LLAMA_BUFFERS))
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, t in hf_state.items():
        name = key.removeprefix(prefix)
        m = layer_key.fullmatch(name)
        if key == "lm_head.weight":
            out["lm_head.weight"] = t  # dropped by build_model when tied
        elif buffers.fullmatch(name):
            continue
        elif name in top:
            out[top[name]] = t
        elif gpt2 and m and m[2] == "attn.c_attn":
            # Conv1D (d, 3d) -> Linear rows; bias (3d,) splits the same way, q first
            w = t.t() if m[3] == "weight" else t
            for part, chunk in zip("qkv", w.split(cfg.d_model, dim=0)):
                out[f"layers.{m[1]}.attn.{part}_proj.{m[3]}"] = chunk.contiguous()
        elif m and m[2] in per_layer:
            if gpt2 and m[3] == "weight" and m[2] not in ("ln_1", "ln_2"):
                t = t.t().contiguous()  # Conv1D (in, out) -> Linear (out, in)
            out[f"layers.{m[1]}.{per_layer[m[2]]}.{m[3]}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ArgenError(f"{len(unknown)} unexpected weight(s) in the {model_type} checkpoint, e.g. {unknown[:3]}",
                         hint="the checkpoint has parts argen does not implement (or its config.json is wrong)")
    return out


def _safe_name(folder: Path, name: Any) -> Path:
    # a shard must sit inside the model folder; an index naming "../x" is corrupt or hostile
    if not isinstance(name, str) or Path(name).name != name:
        raise ArgenError(f"index in {folder} names an invalid shard file {name!r}", hint="the index file is corrupt")
    return folder / name


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of the folder; safetensors preferred, pytorch_model.bin only when none exist."""
    for single, index, reader in (("model.safetensors", "model.safetensors.index.json", read_safetensors),
                                  ("pytorch_model.bin", "pytorch_model.bin.index.json", read_torch_file)):
        if (folder / single).exists():
            return reader(folder / single)
        if (folder / index).exists():
            weight_map = read_json(folder / index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ArgenError(f"{folder / index} has no weight_map", hint="the index file is corrupt")
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values()), key=str):
                state.update(reader(_safe_name(folder, shard)))
            missing = sorted(set(weight_map) - set(state))
            if missing:
                raise ArgenError(f"{len(missing)} tensor(s) listed in {index} are in no shard, e.g. {missing[:3]}",
                                 hint="a shard is from another download; re-download the model")
            return state
    raise ArgenError(f"no weights in {folder} (looked for model.safetensors, sharded safetensors, pytorch_model.bin)",
                     hint="download the weight files into the folder")


def _first_id(value: Any) -> int | None:
    # HF allows a list of ids (e.g. Llama 3 Instruct's several end tokens); the first is the main one
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def load_hf_folder(path: str | Path) -> tuple[Transformer, dict[str, Any]]:
    """Load a Hugging Face model folder into an argen :class:`Transformer` (CPU, float32, eval).

    Returns ``(model, info)`` with info keys ``model_type``, ``eos_token_id``, ``bos_token_id``
    (int or None; generation_config.json wins over config.json), ``tokenizer`` (path of
    tokenizer.json or None) and ``name`` (the folder name).
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ArgenError(f"{folder} has no config.json", hint="point at a Hugging Face model folder (config.json + weights)")
    hf = read_json(folder / "config.json")
    if "model_type" not in hf:
        raise ArgenError(f"{folder / 'config.json'} has no model_type", hint="this is not a Hugging Face transformers config")
    cfg = hf_config_to_argen(hf, source=str(folder))
    state = convert_state_dict(hf["model_type"], _read_weights(folder), cfg)
    # half-precision checkpoints are upcast: argen computes in float32 on CPU
    model = build_model(cfg, {k: v.float() for k, v in state.items()}, str(folder))
    gen = read_json(folder / "generation_config.json") if (folder / "generation_config.json").is_file() else {}
    ids = {k: _first_id(gen.get(k)) if gen.get(k) is not None else _first_id(hf.get(k))
           for k in ("eos_token_id", "bos_token_id")}
    tok = folder / "tokenizer.json"
    info = {"model_type": hf["model_type"], **ids, "tokenizer": str(tok) if tok.is_file() else None,
            "name": folder.resolve().name}
    return model.eval(), info
