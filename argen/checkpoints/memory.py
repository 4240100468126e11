"""Checking a model's size against the memory this machine has free, before anything is built:
an absurd config.json (a million layers, a 1e9 width) fails at once in one line instead of
allocating until the kernel kills the process."""

from __future__ import annotations

import os
from pathlib import Path

from argen.errors import ArgenError

# what may be asked of the free memory at most: the rest is left to activations, the KV cache and
# the other programs of the machine
MARGIN = 0.9


def available_memory() -> int | None:
    """Bytes that can be allocated without swapping: Linux's MemAvailable (/proc/meminfo), else
    the free physical pages (``os.sysconf``); None where neither can be read (then nothing is checked)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def size_text(n: float) -> str:
    """``n`` bytes for a message: "3.2 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_memory(need: int, source: str, what: str = "the model") -> None:
    """A one-line ArgenError when ``need`` bytes exceed the free memory (less a margin)."""
    free = available_memory()
    if free is None or need <= MARGIN * free:
        return
    raise ArgenError(f"{source}: {what} needs about {size_text(need)} of memory, this machine has "
                     f"{size_text(free)} free", hint="use a machine with more memory; if the model should be "
                     "small, its config.json does not belong to its weights")
