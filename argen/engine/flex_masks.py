"""Block-sparse attention for block-causal layouts through FlexAttention (CUDA only).

argen's masks come from token positions (:meth:`argen.engine.transformer.Transformer.attention_mask`):
query t reads key s when s's attention block is not after t's (prefix = block 0, then blocks of
``block_size`` or of ``block_sizes``: VAR's scales, block diffusion's and video's blocks), padded
keys are unreadable and padded queries read only padding. As a dense (B, 1, T, S) mask SDPA
computes every masked tile; FlexAttention's ``BlockMask`` lists, per tile of 128 x 128, whether it
is empty, full or partial, so empty tiles are skipped and full ones need no mask at all
(PyTorch docs, ``torch.nn.attention.flex_attention``: ``create_block_mask``, ``flex_attention``;
the FlexAttention blog post, pytorch.org/blog/flexattention, "Block sparsity").

The mask function reads the same block ids as the dense mask, so the two agree element for
element (tests/test_flex_masks.py checks ``create_mask`` against ``attention_mask`` and
FlexAttention's output against SDPA's on CPU). Block masks are built once per layout (the query
and key positions) and kept in a small cache on the model; the CPU path keeps dense SDPA.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch

TILE = 128  # FlexAttention's default block size (both sides)
_KEEP = 8  # layouts kept per model: a training run has one or two, a sampler one per length


def block_causal_mask_mod(q_block: torch.Tensor, k_block: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor):
    """FlexAttention ``mask_mod(b, h, q, k)`` of the dense mask: block ids (B, T) / (B, S) and
    positions (-1 = padding), each with a batch of 1 when every row shares the layout."""
    def mask_mod(b, h, q, k):
        bq = b if q_block.shape[0] > 1 else 0
        bk = b if k_block.shape[0] > 1 else 0
        q_pad, k_pad = q_pos[bq, q] < 0, k_pos[bk, k] < 0
        return ((k_block[bk, k] <= q_block[bq, q]) & ~k_pad) | (q_pad & k_pad)
    return mask_mod


def _layout_key(q_pos: torch.Tensor, k_pos: torch.Tensor) -> tuple:
    """What identifies a layout: the positions themselves (one copy to the host per uncached pass)."""
    return (tuple(q_pos.shape), tuple(k_pos.shape), str(q_pos.device),
            q_pos.cpu().numpy().tobytes(), k_pos.cpu().numpy().tobytes())


def build_block_mask(model, q_pos: torch.Tensor, k_pos: torch.Tensor, tile: int = TILE):
    """The ``BlockMask`` of ``model.attention_mask(q_pos, k_pos)`` for positions (B, T), (B, S);
    when every row has the same positions the mask has a batch of 1 (broadcast)."""
    from torch.nn.attention.flex_attention import create_block_mask

    if q_pos.shape[0] > 1 and bool((q_pos == q_pos[:1]).all()) and bool((k_pos == k_pos[:1]).all()):
        q_pos, k_pos = q_pos[:1], k_pos[:1]
    mod = block_causal_mask_mod(model.block_ids(q_pos), model.block_ids(k_pos), q_pos, k_pos)
    b = q_pos.shape[0] if q_pos.shape[0] > 1 else None
    return create_block_mask(mod, b, None, q_pos.shape[1], k_pos.shape[1], device=q_pos.device,
                             BLOCK_SIZE=tile)


def cached_block_mask(model, q_pos: torch.Tensor, k_pos: torch.Tensor):
    """:func:`build_block_mask`, built once per layout and kept on ``model`` (at most a few)."""
    cache: OrderedDict = model.__dict__.setdefault("_flex_masks", OrderedDict())
    key = _layout_key(q_pos, k_pos)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    mask = cache[key] = build_block_mask(model, q_pos, k_pos)
    while len(cache) > _KEEP:
        cache.popitem(last=False)
    return mask


def flex_usable(model, x: torch.Tensor) -> bool:
    """Whether an uncached pass of ``model`` over ``x`` uses FlexAttention instead of a dense mask:
    a CUDA tensor, a layout with blocks or a prefix (plain causal passes keep SDPA's causal kernel),
    no attention dropout in training (FlexAttention has none), a head size its kernels take."""
    c = model.cfg
    hd = c.head_dim
    return (x.is_cuda and not c.causal and (c.dropout == 0 or not model.training)
            and hd >= 16 and hd & (hd - 1) == 0 and flex_available())


@functools.lru_cache(maxsize=1)
def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    """FlexAttention compiled once (uncompiled it materialises the scores, as dense attention)."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, gqa: bool) -> torch.Tensor:
    """Attention (B, H, T, hd) under ``block_mask``; compiled on CUDA, the eager reference elsewhere."""
    if q.is_cuda:
        return _compiled_flex()(q, k, v, block_mask=block_mask, enable_gqa=gqa)
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=gqa)
