"""bench/gpu.py's own arithmetic (its rows need a GPU; ``--dry-run`` runs them on a CPU by hand)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import tiny_model

_spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).resolve().parents[1] / "bench" / "gpu.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_peak_bandwidth_lookup():
    assert bench.peak_gbps("NVIDIA H100 80GB HBM3", None) == 3350
    assert bench.peak_gbps("NVIDIA H100 PCIe", None) == 2000  # the longer name wins
    assert bench.peak_gbps("NVIDIA H200", None) == 4800
    assert bench.peak_gbps("Some GPU", None) is None
    assert bench.peak_gbps("NVIDIA H200", 1234.0) == 1234.0


def test_decode_bytes_counts_weights_and_cache():
    model = tiny_model(vocab=50, n_layer=2, d_model=32, n_head=4, n_kv_head=2)
    weights = sum(p.numel() * 4 for n, p in model.named_parameters() if n != "embed.weight")
    kv = 2 * 2 * 2 * 8 * 10 * 4  # k and v, layers, kv heads, head size, positions, float32
    assert bench.decode_bytes(model, 10) == pytest.approx(weights + kv)
    model.to(torch.bfloat16)
    assert bench.decode_bytes(model, 10) == pytest.approx((weights + kv) / 2)


def test_table_marks_missing_modes():
    out = bench.table([("text b1", "eager", 12.5, "tokens/s", 0.5), ("text b1", "graphs", None, "tokens/s", None)])
    assert "| text b1 | eager | 12.50 | tokens/s | 50.0% |" in out
    assert "| text b1 | graphs | n/a | tokens/s |  |" in out
