"""Samples/s of `argen run` against a shell loop that calls `argen text` once per sample, on the
same plan (the bundled shakespeare-char model, 24 samples of 64 characters).

Run: ``python bench/recipe_throughput.py [--samples N]``. Target: at least 10x.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """defaults:
  model: shakespeare-char
  max_new_tokens: 64
  batch_size: 8
jobs:
  - name: bench
    modality: text
    prompts: ["ROMEO:", "JULIET:", "HAMLET:"]
    seeds: {{start: 0, count: {per_prompt}}}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=24, help="a multiple of 3")
    args = ap.parse_args()
    per_prompt = max(1, args.samples // 3)
    n = per_prompt * 3
    argen = [sys.executable, "-m", "argen"]
    work = Path(tempfile.mkdtemp(prefix="argen-bench-"))
    try:
        recipe = work / "bench.yaml"
        recipe.write_text(RECIPE.format(per_prompt=per_prompt))
        t0 = time.perf_counter()
        subprocess.run([*argen, "run", str(recipe), "-o", str(work / "run"), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        t_run = time.perf_counter() - t0
        # the shell-loop baseline: one process, one model load, one sample at a time
        t0 = time.perf_counter()
        for prompt in ("ROMEO:", "JULIET:", "HAMLET:"):
            for seed in range(per_prompt):
                subprocess.run([*argen, "text", "--prompt", prompt, "--seed", str(seed), "--max-new-tokens", "64",
                                "--temperature", "0.8", "-o", str(work / "loop" / f"{prompt[:-1]}-{seed}.txt"),
                                "--quiet"], check=True, stdout=subprocess.DEVNULL)
        t_loop = time.perf_counter() - t0
        same = all((work / "run" / "bench" / f"{i:04d}-{seed}.txt").read_text()
                   == (work / "loop" / f"{p[:-1]}-{seed}.txt").read_text()
                   for i, (p, seed) in enumerate((p, s) for p in ("ROMEO:", "JULIET:", "HAMLET:") for s in range(per_prompt)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{n} samples of 64 tokens with shakespeare-char")
    print(f"  argen run:          {n / t_run:6.2f} samples/s ({t_run:.1f} s)")
    print(f"  shell loop of CLI:  {n / t_loop:6.2f} samples/s ({t_loop:.1f} s)")
    print(f"  speed-up: {t_loop / t_run:.1f}x (target >= 10x); same texts: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
