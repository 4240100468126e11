"""Weight-only int8: close to the float model, and the bundled model keeps its quality."""

import json

import pytest
import torch
from conftest import SHAKESPEARE, tiny_model
from torch import nn

from argen.engine.quantize import Int8Linear, quantize_int8


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_linear_is_close_to_float(dtype):
    torch.manual_seed(0)
    lin = nn.Linear(96, 65, bias=True)
    x = torch.randn(5, 3, 96)
    q = Int8Linear(lin)
    assert q.weight.dtype == torch.int8 and q.scales.shape == (65,)
    ref = lin(x)
    out = q(x.to(dtype)).float()
    assert out.shape == ref.shape
    assert ((out - ref).norm() / ref.norm()).item() < 0.02


def test_quantized_model_keeps_its_greedy_choices():
    m = tiny_model(sharp=30)
    x = torch.randint(50, (2, 30))
    with torch.no_grad():
        ref = m(x)
        out = quantize_int8(m)(x)
    assert all(isinstance(getattr(m.layers[0].mlp, n), Int8Linear) for n in ("gate_proj", "up_proj", "down_proj"))
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="needs tiny shakespeare")
def test_bundled_model_int8_loss_within_a_hundredth(cli):
    args = ("eval", "text", "--data", SHAKESPEARE, "--json", "--quiet", "--seq-len", "128")
    fp = json.loads(cli(*args)[1])["val_loss"]
    code, out, err = cli(*args, "--quantize", "int8")
    assert code == 0, err
    assert abs(json.loads(out)["val_loss"] - fp) < 0.01
