"""Device and dtype choice, shared by every pipeline."""

from __future__ import annotations

import torch

from argen.errors import UsageError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else MPS, else CPU. Asking for an absent device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available", hint="use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: MPS is not available here", hint="use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}", hint="use auto, cpu, cuda or mps")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device, quantize: str = "none") -> torch.dtype:
    """``auto``: bfloat16 on CUDA GPUs that support it, float16 on other accelerators, float32 on
    CPU, except with ``quantize="int8"``: bfloat16 on CPU too, the activations PyTorch's int8 CPU
    kernel is fastest with (see argen/engine/quantize.py)."""
    if name == "auto":
        if quantize == "int8" and device.type == "cpu":
            return torch.bfloat16
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {name!r}", hint="use auto, float32, bfloat16 or float16")
    return DTYPES[name]
