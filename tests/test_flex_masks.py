"""FlexAttention block masks for block-causal layouts equal the dense masks they replace, and
FlexAttention under them gives SDPA's output (on CPU: FlexAttention's eager reference)."""

import pytest
import torch

pytest.importorskip("torch.nn.attention.flex_attention")
from conftest import tiny_model  # noqa: E402
from torch.nn.attention.flex_attention import create_mask  # noqa: E402

from argen.engine import transformer as transformer_mod  # noqa: E402
from argen.engine.flex_masks import block_causal_mask_mod, build_block_mask, cached_block_mask, flex_usable  # noqa: E402
from argen.engine.sampling.step import left_pad  # noqa: E402

LAYOUTS = {
    "var_scales": dict(block_sizes=[1, 4, 9, 16], prefix_len=1),  # VAR: a class token, then scales
    "block_diffusion": dict(block_size=4, prefix_len=3),  # a prompt, then blocks of 4
    "video_blocks": dict(block_size=16),  # one frame's tokens per block
}


def _positions(lengths: list[int]) -> torch.Tensor:
    """Left-padded positions (B, L) of rows of these lengths (-1 on padding)."""
    return left_pad([[0] * n for n in lengths])[1]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("lengths", [[40, 40], [40, 29, 7]])  # shared layout; left padding
def test_block_mask_equals_dense_mask(layout, lengths):
    model = tiny_model(max_seq_len=64, **LAYOUTS[layout])
    pos = _positions(lengths)
    dense = model.attention_mask(pos, pos)  # (B, 1, T, T)
    assert not dense.all() and dense.any(dim=-1).all()  # a real mask, no empty softmax row
    mod = block_causal_mask_mod(model.block_ids(pos), model.block_ids(pos), pos, pos)
    b, t = pos.shape
    assert torch.equal(create_mask(mod, b, None, t, t, device="cpu"), dense)
    # the tile structure: a tile is listed iff any of its entries is allowed, full iff all are
    tile = 8
    bm = build_block_mask(model, pos, pos, tile=tile)
    pad = -t % tile
    grid = torch.nn.functional.pad(dense, (0, pad, 0, pad)).unflatten(2, (-1, tile)).unflatten(4, (-1, tile))
    any_ = grid.any(dim=(3, 5))  # (B, 1, T/tile, T/tile)
    listed = bm.to_dense().bool()
    assert torch.equal(listed.expand_as(any_), any_)
    full = grid[:, :, :t // tile, :, :t // tile].all(dim=(3, 5))  # whole tiles only
    assert int(bm.full_kv_num_blocks.sum()) * (b if bm.full_kv_num_blocks.shape[0] == 1 else 1) == int(full.sum())
    assert int(full.sum()) > 0 and int((~any_).sum()) > 0  # full tiles need no mask, empty ones are skipped


@pytest.mark.parametrize("layout", ["var_scales"])  # one: FlexAttention's first eager call costs seconds on CPU
def test_flex_forward_equals_dense_forward(layout, monkeypatch):
    """The model's uncached pass through FlexAttention (the CUDA route, forced on CPU) equals the
    pass through SDPA with the dense mask; the block mask is built once for the layout."""
    model = tiny_model(max_seq_len=64, **LAYOUTS[layout])
    pos = _positions([37, 30])
    idx = torch.randint(0, 50, pos.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense = model(idx, pos=pos)
        monkeypatch.setattr(transformer_mod, "flex_usable", lambda m, x: True)
        flex = model(idx, pos=pos)
        again = model(idx, pos=pos)
    real = pos >= 0
    torch.testing.assert_close(flex[real], dense[real], atol=1e-5, rtol=1e-5)
    assert torch.equal(flex, again)
    assert len(model._flex_masks) == 1
    first = next(iter(model._flex_masks.values()))
    assert cached_block_mask(model, pos, pos) is first
    cached_block_mask(model, pos[:1], pos[:1])  # another layout: another mask
    assert len(model._flex_masks) == 2


def test_cpu_keeps_dense_attention():
    model = tiny_model(block_size=4)
    assert not flex_usable(model, torch.zeros(1, 4, 32))
    assert not flex_usable(tiny_model(), torch.zeros(1, 4, 32))  # plain causal: SDPA's causal kernel
