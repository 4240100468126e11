"""transformers' MusicGen weights -> argen's decoder, and the parts that stay with transformers.

Key names and shapes follow ``modeling_musicgen.py`` / ``modeling_musicgen_melody.py``
(transformers 5), where ``MusicgenForConditionalGeneration`` holds ``text_encoder`` (T5),
``audio_encoder`` (EnCodec), ``decoder`` (``MusicgenForCausalLM``: ``model.decoder`` and
``lm_heads``) and ``enc_to_dec_proj`` (T5 width -> decoder width, only when they differ); the
melody model adds ``audio_enc_to_dec_proj`` (chroma bins -> decoder width).

Per decoder layer i (``decoder.model.decoder.layers.i.``): ``self_attn.{q,k,v,out}_proj``,
``self_attn_layer_norm``, ``encoder_attn.{q,k,v,out}_proj`` and ``encoder_attn_layer_norm``
(not in the melody layout), ``fc1``, ``fc2``, ``final_layer_norm``; then the final
``layer_norm``. ``embed_tokens.q`` are (vocab + 1, d) per codebook (the extra row is PAD/BOS)
and ``lm_heads.q`` (vocab, d): argen stacks them into one ``embed`` and one ``lm_head`` of
``n_codebooks * (vocab + 1)`` rows (the ``n_streams`` layout), the head's PAD rows zero and
never sampled (``vocab_limit``). Checkpoints saved before transformers 4.40 also hold the
sinusoidal table ``embed_positions.weights`` (a frozen parameter then, a non-persistent buffer
now); it is checked against argen's positions and dropped.
"""

from __future__ import annotations

import re

import torch

from argen.engine.transformer import sinusoidal_positions
from argen.errors import ArgenError
from argen.modalities.audio.musicgen.config import MusicGenSpec

DECODER = "decoder.model.decoder."
_LAYER = re.compile(r"layers\.(\d+)\.(.+)")
_PER_LAYER = {
    "self_attn.q_proj.weight": "attn.q_proj.weight", "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.v_proj.weight": "attn.v_proj.weight", "self_attn.out_proj.weight": "attn.o_proj.weight",
    "self_attn_layer_norm.weight": "attn_norm.weight", "self_attn_layer_norm.bias": "attn_norm.bias",
    "encoder_attn.q_proj.weight": "cross.q_proj.weight", "encoder_attn.k_proj.weight": "cross.k_proj.weight",
    "encoder_attn.v_proj.weight": "cross.v_proj.weight", "encoder_attn.out_proj.weight": "cross.o_proj.weight",
    "encoder_attn_layer_norm.weight": "cross_norm.weight", "encoder_attn_layer_norm.bias": "cross_norm.bias",
    "fc1.weight": "mlp.up_proj.weight", "fc2.weight": "mlp.down_proj.weight",
    "final_layer_norm.weight": "mlp_norm.weight", "final_layer_norm.bias": "mlp_norm.bias",
}
PARTS = ("text_encoder.", "audio_encoder.", "enc_to_dec_proj.", "audio_enc_to_dec_proj.")


def split_state(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A checkpoint's tensors by part: ``decoder``, ``text_encoder``, ``audio_encoder``,
    ``enc_to_dec_proj``, ``audio_enc_to_dec_proj`` (each without its prefix). Unknown keys are an
    error (a file from another model)."""
    parts: dict[str, dict[str, torch.Tensor]] = {p[:-1]: {} for p in ("decoder.", *PARTS)}
    unknown = []
    for key, t in state.items():
        part = next((p for p in ("decoder.", *PARTS) if key.startswith(p)), None)
        if part is None:
            unknown.append(key)
        else:
            parts[part[:-1]][key[len(part):]] = t
    if unknown:
        raise ArgenError(f"{len(unknown)} unexpected weight(s) in the MusicGen checkpoint, e.g. {unknown[:3]}",
                         hint="the weights are not a MusicgenForConditionalGeneration's")
    return parts


def convert_decoder(dec: dict[str, torch.Tensor], spec: MusicGenSpec) -> dict[str, torch.Tensor]:
    """The decoder's tensors (keys after ``decoder.``) -> argen's Transformer state dict.

    Works on meta tensors too (shapes only), for counting parameters without weights.
    """
    out: dict[str, torch.Tensor] = {}
    embeds: dict[int, torch.Tensor] = {}
    heads: dict[int, torch.Tensor] = {}
    unknown = []
    for key, t in dec.items():
        if key.startswith("lm_heads.") and key.endswith(".weight"):
            heads[int(key.split(".")[1])] = t
            continue
        if not key.startswith("model.decoder."):
            unknown.append(key)
            continue
        name = key[len("model.decoder."):]
        m = _LAYER.fullmatch(name)
        if name.startswith("embed_tokens.") and name.endswith(".weight"):
            embeds[int(name.split(".")[1])] = t
        elif name == "embed_positions.weights":
            _check_positions(t, spec)
        elif name in ("layer_norm.weight", "layer_norm.bias"):
            out["norm." + name.split(".")[1]] = t
        elif m and m[2] in _PER_LAYER and not (spec.melody and "encoder_attn" in m[2]):
            out[f"layers.{m[1]}.{_PER_LAYER[m[2]]}"] = t
        else:
            unknown.append("decoder." + key)
    if unknown:
        raise ArgenError(f"{len(unknown)} unexpected decoder weight(s), e.g. {unknown[:3]}",
                         hint="the decoder is not a MusicGen decoder of this config (or config.json is wrong)")
    k, v = spec.n_codebooks, spec.stream_vocab
    if sorted(embeds) != list(range(k)) or sorted(heads) != list(range(k)):
        raise ArgenError(f"the decoder needs {k} embeddings and {k} heads, found {len(embeds)} and {len(heads)}",
                         hint="the weights do not match config.json's num_codebooks")
    for q in range(k):
        if tuple(embeds[q].shape) != (v, spec.d_model) or tuple(heads[q].shape) != (v - 1, spec.d_model):
            raise ArgenError(f"codebook {q}: embedding {tuple(embeds[q].shape)} / head {tuple(heads[q].shape)}, "
                             f"expected ({v}, {spec.d_model}) / ({v - 1}, {spec.d_model})",
                             hint="the weights do not match config.json")
    out["embed.weight"] = torch.cat([embeds[q] for q in range(k)])  # (K * (V + 1), d)
    pad_row = heads[0].new_zeros(1, spec.d_model)
    out["lm_head.weight"] = torch.cat([torch.cat([heads[q], pad_row]) for q in range(k)])  # (K * (V + 1), d)
    return out


def _check_positions(table: torch.Tensor, spec: MusicGenSpec) -> None:
    # an old checkpoint's stored sinusoids must be the ones argen computes, or the layout differs
    if table.device.type == "meta":
        return
    pos = torch.arange(table.shape[0])[None]
    ours = sinusoidal_positions(pos, spec.d_model, torch.float32)[0]
    if table.shape != ours.shape or not torch.allclose(table.float(), ours, atol=1e-4):
        raise ArgenError("the checkpoint's stored position table is not MusicGen's sinusoids",
                         hint="this decoder uses another position layout; it cannot be loaded")


def rename_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EnCodec weights saved with ``torch.nn.utils.weight_norm`` (``weight_g``/``weight_v``, the
    2023 uploads) under the names of the parametrization transformers 5 builds
    (``parametrizations.weight.original0``/``original1``)."""
    out = {}
    for key, t in state.items():
        if key.endswith(".weight_g"):
            key = key[: -len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith(".weight_v"):
            key = key[: -len("weight_v")] + "parametrizations.weight.original1"
        out[key] = t
    return out
