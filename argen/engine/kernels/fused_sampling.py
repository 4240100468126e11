"""``fused_sample``: one kernel from logits to tokens (guidance, temperature, top-k, top-p, min-p,
the draw), the narrow interface the sampling loops call on CUDA.

The kernel (:mod:`argen.engine.kernels.sampling_kernel`) samples from exactly the distribution
that :func:`~argen.engine.sampling.processors.probs_from_logits` builds, but draws from per-row
Philox streams instead of ``torch.Generator`` s: the same seed gives the same tokens on the same
device, yet not the tokens of the PyTorch path. It is therefore used only where the user asked
for the fast path (``--compile``) on a CUDA device with Triton, and never on CPUs (see
:func:`use_fused`). Greedy decoding (temperature 0) gives exactly the PyTorch path's tokens.
"""

from __future__ import annotations

import functools
import os

import torch

# Philox streams need 32-bit seeds; these odd multipliers (the golden ratio's and MurmurHash3's
# finaliser constants) spread (row seed, step) pairs over them
_MIX_ROW, _MIX_STEP = 0x9E3779B1, 0x85EBCA77


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether Triton can be imported (it ships with CUDA builds of PyTorch on Linux)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Whether Triton runs kernels on the CPU through its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(device: torch.device | str) -> bool:
    """Whether :func:`fused_sample` can run on tensors of ``device``: CUDA with Triton, or any
    CPU tensor under Triton's interpreter (the tests)."""
    if not triton_available():
        return False
    return torch.device(device).type == "cuda" or interpreting()


def use_fused(sampling, device: torch.device | str, compile: bool) -> bool:
    """The loops' rule: the fused kernel replaces the PyTorch processors when ``compile`` is on,
    the device is CUDA, Triton is present and the settings need nothing the kernel lacks (the
    repetition penalty reads the history; it stays on the PyTorch path)."""
    return (compile and torch.device(device).type == "cuda" and available(device)
            and sampling.repetition_penalty == 1.0)


def step_seeds(base: torch.Tensor, step: int) -> torch.Tensor:
    """Per-row seeds (R,) for draw ``step`` from each row's base seed (R,) (a row's generator's
    ``initial_seed()``): a fresh Philox stream per row and step, 31-bit, computed without a sync."""
    base = base.to(torch.int64) & 0x7FFFFFFF
    return (base * _MIX_ROW + (step + 1) * _MIX_STEP) % 0x7FFFFFFF


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def block_size(vocab: int) -> int:
    """Lanes per iteration: the vocabulary's next power of two, between 16 and 4096."""
    return max(16, min(4096, 1 << (vocab - 1).bit_length()))


def fused_sample(logits_cond: torch.Tensor, logits_uncond: torch.Tensor | None = None, cfg: float = 1.0,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 min_p: float | None = None, seeds: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row of ``logits_cond`` (..., V) -> (...,) int64.

    ``logits_uncond`` (..., V), with ``cfg`` other than 1, are the unconditional twins combined by
    classifier-free guidance ``uncond + cfg * (cond - uncond)`` in float32. Then, unless
    ``temperature`` is 0 (greedy: the first index of the maximum), the logits are divided by
    ``temperature`` and filtered by ``top_k``, ``top_p`` (of the top-k distribution) and
    ``min_p`` in the order of ``process_logits``, and one token is drawn per row with the row's
    seed in ``seeds`` (...,) int64 (see :func:`step_seeds`).
    """
    from argen.engine.kernels.sampling_kernel import DRAW_ROUNDS, fused_sample_kernel

    vocab = logits_cond.shape[-1]
    lead = logits_cond.shape[:-1]
    cond = logits_cond.reshape(-1, vocab)
    if cond.stride(-1) != 1:
        cond = cond.contiguous()
    rows = cond.shape[0]
    guided = logits_uncond is not None and cfg != 1.0
    uncond = cond
    if guided:
        uncond = logits_uncond.reshape(-1, vocab)
        if uncond.shape != cond.shape:
            raise ValueError(f"unconditional logits {tuple(logits_uncond.shape)} differ from {tuple(logits_cond.shape)}")
        if uncond.stride(-1) != 1:
            uncond = uncond.contiguous()
    greedy = temperature == 0
    if not greedy and seeds is None:
        raise ValueError("sampling needs one seed per row")
    if seeds is None:
        seeds = torch.zeros(rows, dtype=torch.int64, device=cond.device)
    seeds = seeds.reshape(-1).to(device=cond.device, dtype=torch.int64)
    if seeds.shape[0] != rows:
        raise ValueError(f"{seeds.shape[0]} seeds for {rows} rows")
    has_k = top_k is not None and 0 < top_k < vocab
    has_p = top_p is not None and top_p < 1.0
    out = torch.empty(rows, dtype=torch.int64, device=cond.device)
    if rows == 0:
        return out.view(lead)
    # the scratch row of weights (float32), read by every pass after the first
    work = torch.empty((rows, vocab) if not greedy else (1,), dtype=torch.float32, device=cond.device)
    block = block_size(vocab)
    # a row per program on GPUs; the interpreter pays per operation, so it takes many rows at once
    per = 1 if cond.is_cuda else min(1024, 1 << max(0, rows - 1).bit_length())
    fused_sample_kernel[(triton_cdiv(rows, per),)](
        cond, uncond, work, out, seeds, rows, vocab, cond.stride(0), uncond.stride(0),
        float(cfg), float(temperature) if not greedy else 1.0, int(top_k) if has_k else 0,
        float(top_p) if has_p else 1.0, float(min_p or 0.0),
        HAS_UNCOND=guided, GREEDY=greedy, TOPK_BISECT=has_k and has_p, HAS_TOPK=has_k, HAS_TOPP=has_p,
        BLOCK=block, ROWS=per, MAX_ROUNDS=DRAW_ROUNDS, num_warps=max(1, min(16, block // 256)),
    )
    return out.view(lead)
