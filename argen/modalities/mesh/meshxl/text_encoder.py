"""x-mesh-xl's text conditioning: CLIP's text tower, a Q-Former and 32 learned queries give 32
prefix vectors that the OPT decoder reads before the mesh tokens.

Facts from OpenMeshLab/MeshXL ``models/x_mesh_xl/get_model.py`` (``ConditionEncoder``) and
``sample_t2m.py``: the prompt is tokenised by CLIP ViT-B/32's tokenizer (``openai/clip-vit-base-
patch32/`` in that repo) padded to 64 tokens; ``multi_encoder.text_model`` (a CLIPModel built from
that config; its weights are in the x-mesh-xl checkpoint) gives the last hidden states; a
``Blip2QFormerModel(Blip2QFormerConfig(num_hidden_layers=12, encoder_hidden_size=512))`` lets 32
``query_embeds`` cross-attend to them (padding masked); ``out_project`` maps its 32 outputs to
the decoder's width; they are the decoder's ``inputs_embeds``, with no BOS after them.

Architectures as in transformers 5: ``models/clip/modeling_clip.py`` (pre-norm blocks, quick
GELU, learned positions, causal + padding mask, a final norm) - run on argen's Transformer - and
``models/blip_2/modeling_blip_2.py`` (``Blip2QFormerModel``: a LayerNorm on the queries, then
BERT-style post-norm layers: self-attention, cross-attention in every second layer from the
first, the query feed-forward ``intermediate_query``/``output_query``; GELU; eps 1e-12).
Head counts are not in the weights: 64-wide heads, as both released sizes have (CLIP text 512/8,
Q-Former 768/12).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from argen.checkpoints.argen_format import build_model
from argen.engine.config import TransformerConfig
from argen.errors import ArgenError

HEAD_DIM = 64
TEXT_LEN = 64  # sample_t2m.py: max_length=64, padding="max_length"
CLIP = "condition_encoder.multi_encoder.text_model."
QF = "condition_encoder.qformer."
_CLIP_LAYER = {"self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj",
               "self_attn.out_proj": "attn.o_proj", "layer_norm1": "attn_norm", "layer_norm2": "mlp_norm",
               "mlp.fc1": "mlp.up_proj", "mlp.fc2": "mlp.down_proj"}
_CLIP_TOP = {"embeddings.token_embedding.weight": "embed.weight", "embeddings.position_embedding.weight": "pos_embed.weight",
             "final_layer_norm.weight": "norm.weight", "final_layer_norm.bias": "norm.bias"}


def clip_text(state: dict[str, torch.Tensor], source: str):
    """CLIP's text tower as an argen Transformer (read its hidden states with ``head=False``)."""
    sub = {k[len(CLIP):]: v for k, v in state.items() if k.startswith(CLIP)}
    out = {}
    for key, t in sub.items():
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if key in _CLIP_TOP:
            out[_CLIP_TOP[key]] = t
        elif m and m[2] in _CLIP_LAYER:
            out[f"layers.{m[1]}.{_CLIP_LAYER[m[2]]}.{m[3]}"] = t
        elif key != "embeddings.position_ids":
            raise ArgenError(f"{source}: unexpected CLIP text weight {key!r}", hint="not an x-mesh-xl checkpoint")
    if "embed.weight" not in out:
        raise ArgenError(f"{source}: no CLIP text tower in the checkpoint", hint="not an x-mesh-xl checkpoint")
    vocab, d = out["embed.weight"].shape
    n_layer = 1 + max(int(k.split(".")[1]) for k in out if k.startswith("layers."))
    cfg = TransformerConfig(vocab_size=int(vocab), n_layer=n_layer, n_head=int(d) // HEAD_DIM, d_model=int(d),
                            d_ff=int(out["layers.0.mlp.up_proj.weight"].shape[0]),
                            max_seq_len=int(out["pos_embed.weight"].shape[0]), pos_emb="learned", norm="layernorm",
                            norm_eps=1e-5, norm_bias=True, mlp="quick_gelu", qkv_bias=True, out_bias=True,
                            mlp_bias=True, tie_embeddings=True, extra={"source": source, "role": "clip-text"})
    return build_model(cfg, {k: v.float() for k, v in out.items()}, source)


class QFormerAttention(nn.Module):
    def __init__(self, d: int, kv_dim: int) -> None:
        super().__init__()
        self.n_head = d // HEAD_DIM
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(kv_dim, d), nn.Linear(kv_dim, d)
        self.dense, self.norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q = self.query(x).view(b, t, self.n_head, HEAD_DIM).transpose(1, 2)  # (B, H, T, hd)
        k = self.key(kv).view(b, kv.shape[1], self.n_head, HEAD_DIM).transpose(1, 2)  # (B, H, S, hd)
        v = self.value(kv).view(b, kv.shape[1], self.n_head, HEAD_DIM).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, hd)
        return self.norm(self.dense(y.transpose(1, 2).reshape(b, t, d)) + x)  # post-norm residual


class QFormerLayer(nn.Module):
    def __init__(self, d: int, d_ff: int, enc_dim: int, cross: bool) -> None:
        super().__init__()
        self.attn = QFormerAttention(d, d)
        self.cross = QFormerAttention(d, enc_dim) if cross else None
        self.up, self.down, self.norm = nn.Linear(d, d_ff), nn.Linear(d_ff, d), nn.LayerNorm(d, eps=1e-12)

    def forward(self, x: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor) -> torch.Tensor:
        x = self.attn(x, x, None)  # the queries see each other
        if self.cross is not None:
            x = self.cross(x, enc, enc_mask)
        return self.norm(self.down(F.gelu(self.up(x))) + x)


class ConditionEncoder(nn.Module):
    """Prompt token ids (B, 64) and their mask -> prefix vectors (B, 32, decoder width)."""

    def __init__(self, clip: nn.Module, queries: int, d: int, d_ff: int, n_layer: int, out_dim: int) -> None:
        super().__init__()
        self.clip = clip
        enc_dim = clip.cfg.d_model
        self.query_embeds = nn.Embedding(queries, d)
        self.in_norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(QFormerLayer(d, d_ff, enc_dim, i % 2 == 0) for i in range(n_layer))
        self.out_project = nn.Linear(d, out_dim)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.where(mask.bool(), torch.arange(ids.shape[1], device=ids.device).expand_as(ids), -1)
        enc = self.clip(ids, pos=pos, head=False)  # (B, 64, 512); padding rows are never read
        keep = mask.bool()[:, None, None, :]  # (B, 1, 1, 64): cross-attention skips padding
        x = self.in_norm(self.query_embeds.weight.expand(ids.shape[0], -1, -1))  # (B, 32, 768)
        for layer in self.layers:
            x = layer(x, enc.to(x.dtype), keep)
        return self.out_project(x)  # (B, 32, out_dim)


# transformers' Blip2QFormerModel tensor names -> ConditionEncoder's (the weight/bias suffix kept)
_QF_RENAMES = [(r"layernorm\.", "in_norm.")]
for _src, _dst in (("attention", "attn"), ("crossattention", "cross")):
    _QF_RENAMES += [(rf"encoder\.layer\.(\d+)\.{_src}\.attention\.", rf"layers.\1.{_dst}."),
                    (rf"encoder\.layer\.(\d+)\.{_src}\.output\.dense\.", rf"layers.\1.{_dst}.dense."),
                    (rf"encoder\.layer\.(\d+)\.{_src}\.output\.LayerNorm\.", rf"layers.\1.{_dst}.norm.")]
_QF_RENAMES += [(r"encoder\.layer\.(\d+)\.intermediate_query\.dense\.", r"layers.\1.up."),
                (r"encoder\.layer\.(\d+)\.output_query\.dense\.", r"layers.\1.down."),
                (r"encoder\.layer\.(\d+)\.output_query\.LayerNorm\.", r"layers.\1.norm.")]
_QF_UNUSED = re.compile(r"encoder\.layer\.\d+\.(intermediate|output)\.")  # the text branch: queries never use it


def condition_encoder(state: dict[str, torch.Tensor], source: str) -> ConditionEncoder:
    """x-mesh-xl's condition encoder from its checkpoint's ``condition_encoder.*`` tensors."""
    mapped = {}
    for key, t in state.items():
        if not key.startswith(QF):
            continue
        name = key[len(QF):]
        for pattern, target in _QF_RENAMES:
            renamed, hit = re.subn("^" + pattern, target, name)
            if hit:  # names that map to nothing real fail the shape check below
                mapped[renamed] = t
                break
        else:
            if not _QF_UNUSED.match(name):
                raise ArgenError(f"{source}: unexpected Q-Former weight {key!r}", hint="not an x-mesh-xl checkpoint")
    for name in ("query_embeds.weight", "out_project.weight", "out_project.bias"):
        if f"condition_encoder.{name}" not in state:
            raise ArgenError(f"{source}: no condition_encoder.{name}", hint="not an x-mesh-xl checkpoint")
        mapped[name] = state[f"condition_encoder.{name}"]
    queries, d = mapped["query_embeds.weight"].shape
    n_layer = 1 + max(int(k.split(".")[1]) for k in mapped if k.startswith("layers."))
    enc = ConditionEncoder(clip_text(state, source), int(queries), int(d), int(mapped["layers.0.up.weight"].shape[0]),
                           n_layer, int(mapped["out_project.weight"].shape[0]))
    own = {k: v for k, v in enc.state_dict().items() if not k.startswith("clip.")}
    if set(own) != set(mapped) or any(own[k].shape != mapped[k].shape for k in own):
        bad = sorted(set(own) ^ set(mapped))[:3]
        raise ArgenError(f"{source}: the Q-Former weights do not fit together (e.g. {bad})", hint="the checkpoint is corrupt")
    enc.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=False)
    return enc.eval()


def encode_prompt(tokenizer, prompts: list[str], length: int = TEXT_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask (B, length) as ``batch_encode_plus(max_length=length,
    padding="max_length", truncation=True)`` gives them, with a ``tokenizers.Tokenizer``
    (CLIP's tokenizer.json; it pads with its end token)."""
    pad = tokenizer.token_to_id("<|endoftext|>")
    ids, masks = [], []
    for p in prompts:
        enc = tokenizer.encode(p)
        toks = enc.ids
        if len(toks) > length:  # keep the end token, as truncation with special tokens does
            toks = toks[:length - 1] + toks[-1:]
        ids.append(toks + [pad] * (length - len(toks)))
        masks.append([1] * len(toks) + [0] * (length - len(toks)))
    return torch.tensor(ids), torch.tensor(masks)
