"""Weight-only int8 quantisation for decoding, where reading the weights is the bottleneck.

Each output channel of a linear layer keeps int8 weights and one scale (absmax / 127), the
scheme of gpt-fast's ``WeightOnlyInt8QuantHandler``. On CPU the product runs in PyTorch's
``_weight_int8pack_mm`` kernel (bf16 or fp16 activations are fastest); elsewhere the weights are
dequantised on the fly, which is correct everywhere but saves only memory.

Every family whose decoder is argen's :class:`Transformer` quantises through
:func:`quantize_weights` (``--quantize int8``); :func:`argen.engine.device.resolve_dtype` picks
the activations' dtype that goes with it (bfloat16 on CPU when ``--dtype auto``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.errors import UsageError

MODES = ("none", "int8")


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` with int8 weights (out, in) and float32 scales (out,)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)  # (out,)
        self.register_buffer("weight", torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.packed = linear.weight.device.type == "cpu" and hasattr(torch.ops.aten, "_weight_int8pack_mm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (N, in)
        if self.packed and flat.device.type == "cpu":
            y = torch.ops.aten._weight_int8pack_mm(flat.contiguous(), self.weight, self.scales.to(flat.dtype))
        else:
            y = F.linear(flat, self.weight.to(flat.dtype)) * self.scales.to(flat.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*x.shape[:-1], -1)  # (..., out)


def check_mode(mode: str) -> str:
    """``mode`` if argen knows it (none, int8), else a one-line UsageError."""
    if mode not in MODES:
        raise UsageError(f"unknown --quantize {mode!r}", hint="use none or int8")
    return mode


def quantize_int8(model: nn.Module, blocks: str = "layers", heads: Sequence[str] = ("lm_head",)) -> nn.Module:
    """Replace, in place, every linear layer under ``model.<blocks>`` (self- and cross-attention,
    MLP) and the output ``heads`` (attribute paths on ``model``) by :class:`Int8Linear`. The
    defaults fit argen's :class:`~argen.engine.transformer.Transformer`; a family whose head sits
    outside it names its own (Janus: ``blocks="lm.layers", heads=("head_proj", "head_out")``)."""
    for module in model.get_submodule(blocks).modules():
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    for path in heads:
        owner, _, name = path.rpartition(".")
        parent = model.get_submodule(owner) if owner else model
        if isinstance(getattr(parent, name), nn.Linear):
            setattr(parent, name, Int8Linear(getattr(parent, name)))
    return model.eval()


def quantize_weights(model: nn.Module, mode: str, blocks: str = "layers",
                     heads: Sequence[str] = ("lm_head",)) -> nn.Module:
    """The decoder of a loaded model (already on its device and dtype) under ``--quantize mode``:
    unchanged for ``none``, :func:`quantize_int8` for ``int8``."""
    if check_mode(mode) == "int8":
        quantize_int8(model, blocks, heads)
    return model
