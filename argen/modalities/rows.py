"""What several requests share: one prompt drawn with seeds S, S+1, ..., or a list of prompts
each with its own seed (batch recipes)."""

from __future__ import annotations

import random

from argen.errors import UsageError


class PromptRows:
    """Mixin for request dataclasses with ``prompt`` (str, or list of str), ``n``, ``seed`` and
    ``seeds`` fields."""

    def check_rows(self) -> None:
        if self.n < 1:
            raise UsageError(f"-n must be at least 1, got {self.n}", hint="e.g. -n 4")
        if isinstance(self.prompt, list) and (self.seeds is None or len(self.seeds) != len(self.prompt)):
            raise UsageError("a list of prompts needs one seed per prompt", hint="check the request")

    def rows(self) -> list[tuple[str, int]]:
        """(prompt, seed) of every sample: seeds S, S+1, ... for one prompt, else the given pairs."""
        if isinstance(self.prompt, list):
            return list(zip(self.prompt, self.seeds))
        if self.seeds is not None:
            return [(self.prompt, s) for s in self.seeds]
        base = self.seed if self.seed is not None else random.randrange(2**31)
        return [(self.prompt, base + i) for i in range(self.n)]
