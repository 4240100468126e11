"""Weight-only int8 quantisation for decoding, where reading the weights is the bottleneck.

Each output channel of a linear layer keeps int8 weights and one scale (absmax / 127), the
scheme of gpt-fast's ``WeightOnlyInt8QuantHandler``. On CPU the product runs in PyTorch's
``_weight_int8pack_mm`` kernel (bf16 or fp16 activations are fastest); elsewhere the weights are
dequantised on the fly, which is correct everywhere but saves only memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.transformer import Transformer


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


def quantize_int8(model: Transformer) -> Transformer:
    """Replace every linear layer of the blocks and the output head, in place (for inference)."""
    for module in [*model.layers.modules(), model]:
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and (module is not model or name == "lm_head"):
                setattr(module, name, Int8Linear(child))
    return model.eval()
