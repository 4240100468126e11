"""Tiny LlamaGen text-to-image weights in the official key layout, rebuilt deterministically.

Used by tests/test_llamagen_t2i.py and, once, by the script that ran FoundationVision/LlamaGen's
own code on the same weights to record tests/fixtures/llamagen_t2i/reference.npz (see the README
there). Weights are drawn from one seeded generator in sorted key order, so both sides rebuild
identical tensors from the key names and shapes alone.
"""

from __future__ import annotations

import math

import torch

# a GPT of 2 layers, 4 heads of 16, a 4x4 token grid, 64 codes; captions of 120 tokens x 32
DIM, LAYERS, HEADS, GRID, VOCAB, CAPTION_DIM, CLS_TOKENS = 64, 2, 4, 4, 64, 32, 120
FFN = 256  # LlamaGen's find_multiple(int(2 * 4 * 64 / 3), 256)
VQ_MULT, VQ_Z, VQ_CODE_DIM = [1, 2], 32, 8  # VQ: ch 128 and 2 res blocks are the reference's fixed values
CFG_SCALE = 4.0
VALID = [7, 120]  # caption tokens of the two rows (the rest is padding)


def gpt_shapes(dim: int = DIM, layers: int = LAYERS, vocab: int = VOCAB, caption_dim: int = CAPTION_DIM,
               ffn: int = FFN) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a text-conditional GPT (autoregressive/models/gpt.py, model_type 't2i')."""
    shapes = {"tok_embeddings.weight": (vocab, dim), "cls_embedding.cap_proj.fc1.weight": (dim, caption_dim),
              "cls_embedding.cap_proj.fc2.weight": (dim, dim),
              "cls_embedding.uncond_embedding": (CLS_TOKENS, caption_dim),
              "norm.weight": (dim,), "output.weight": (vocab, dim)}
    for i in range(layers):
        shapes.update({f"layers.{i}.attention.wqkv.weight": (3 * dim, dim),
                       f"layers.{i}.attention.wo.weight": (dim, dim),
                       f"layers.{i}.feed_forward.w1.weight": (ffn, dim), f"layers.{i}.feed_forward.w3.weight": (ffn, dim),
                       f"layers.{i}.feed_forward.w2.weight": (dim, ffn), f"layers.{i}.attention_norm.weight": (dim,),
                       f"layers.{i}.ffn_norm.weight": (dim,)})
    return shapes


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Norm scales 1 + N(0, 0.1), other vectors N(0, 0.1), embedding tables N(0, 1), matrices and
    kernels N(0, 1) * 1.5 / sqrt(fan_in); one generator, keys in sorted order."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = shapes[key]
        noise = torch.randn(shape, generator=g)
        if len(shape) == 1:
            out[key] = 1 + 0.1 * noise if ("norm" in key and key.endswith("weight")) else 0.1 * noise
        elif "embedding" in key:
            out[key] = noise
        else:
            out[key] = noise * 1.5 / math.sqrt(math.prod(shape[1:]))
    return out


def gpt_state(seed: int = 0) -> dict[str, torch.Tensor]:
    return seeded_state(gpt_shapes(), seed)


def vq_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the VQ (tokenizer/tokenizer_image/vq_model.py), from argen's module, whose
    names are the official ones (minus the codebook-usage buffer)."""
    from argen.modalities.image.llamagen.vq import LlamaGenVQ

    with torch.device("meta"):
        vq = LlamaGenVQ(vq_config())
    return {k: tuple(v.shape) for k, v in vq.state_dict().items()}


def vq_config():
    from argen.modalities.image.llamagen.vq import LlamaGenVQConfig

    return LlamaGenVQConfig(codebook_size=VOCAB, codebook_dim=VQ_CODE_DIM, ch=128, encoder_ch_mult=VQ_MULT,
                            decoder_ch_mult=VQ_MULT, z_channels=VQ_Z, num_res_blocks=2, norm_groups=32)


def vq_state(seed: int = 1) -> dict[str, torch.Tensor]:
    return seeded_state(vq_shapes(), seed)


def captions(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-ins for T5 outputs: (B, 120, CAPTION_DIM) and the tokenizer's right-padded masks (B, 120)."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(len(VALID), CLS_TOKENS, CAPTION_DIM, generator=g)
    mask = torch.zeros(len(VALID), CLS_TOKENS, dtype=torch.long)
    for i, n in enumerate(VALID):
        mask[i, :n] = 1
    return emb, mask


def forced_grid(seed: int = 3) -> torch.Tensor:
    """The image tokens teacher-forced while recording per-position logits: (B, GRID * GRID)."""
    return torch.randint(0, VOCAB, (len(VALID), GRID * GRID), generator=torch.Generator().manual_seed(seed))
