"""The same-bytes check: a fixed set of commands over every bundled model, CLI and recipe
paths, whose outputs' sha256 were recorded before the modality contract was introduced
(tests/fixtures/golden_outputs.json). `python tests/golden.py --record` records them again.

The argen version in each file's metadata is pinned to "golden", so that a release does not
change the record; a CIF's run time (``seconds``, which no other format carries) is dropped
from its metadata line before hashing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "fixtures" / "golden_outputs.json"

RECIPE = """\
jobs:
  - name: text
    modality: text
    prompts: ["ROMEO:"]
    seeds: [0, 1]
    max_new_tokens: 60
  - name: image-token
    modality: image
    sampler: next-token
    prompts: ["a red circle in the top left"]
    seeds: [0, 1]
  - name: image-scale
    modality: image
    sampler: next-scale
    prompts: ["a blue square left of a green triangle"]
    seeds: [0, 1]
  - name: audio
    modality: audio
    prompts: ["square C4 E4 G4 at 120 bpm"]
    seeds: [0, 1]
  - name: video
    modality: video
    prompts: ["a red circle and a blue square"]
    seeds: [0, 1]
    frames: 4
    steps: 4
"""

# (case name, argv); every file the command writes under the case's folder is hashed
COMMANDS: list[tuple[str, list[str]]] = [
    ("text", ["text", "-p", "ROMEO:", "--max-new-tokens", "80", "--seed", "0", "-n", "2", "-o", "t-{seed}.txt"]),
    ("text-greedy", ["text", "-p", "JULIET:", "--max-new-tokens", "40", "--temperature", "0", "--seed", "2",
                     "-o", "g.txt"]),
    ("image-token", ["image", "-p", "a red circle in the top left", "-n", "2", "--seed", "0", "-o", "i-{seed}.png"]),
    ("image-scale", ["image", "-p", "a blue square left of a green triangle", "--sampler", "next-scale", "-n", "2",
                     "--seed", "3", "-o", "s-{seed}.png", "--grid"]),
    ("mesh", ["mesh", "-p", "a tall lamp", "-n", "2", "--seed", "0", "--max-faces", "120", "-o", "m-{seed}.obj"]),
    ("mesh-glb", ["mesh", "-p", "a wide table", "--seed", "5", "--max-faces", "80", "-o", "t.glb"]),
    ("crystal", ["crystal", "--composition", "BaTiO3", "-n", "2", "--seed", "0", "-o", "out/"]),
    ("audio", ["audio", "-p", "square C4 E4 G4 C5 at 120 bpm", "--seed", "0", "-o", "a-{seed}.wav"]),
    ("audio-1", ["audio", "-p", "saw A3 C4 E4", "--seconds", "1.5", "--seed", "1", "-o", "b.flac"]),
    ("video", ["video", "-p", "a red circle and a blue square", "--frames", "6", "--steps", "4", "--seed", "0",
               "-o", "v.mp4"]),
    ("video-1", ["video", "-p", "a green square", "--frames", "4", "--steps", "4", "--seed", "1", "-o", "w.mp4"]),
    ("recipe", ["run", "{recipe}", "-o", "run", "--quiet"]),
]


def normalise(path: Path, data: bytes) -> bytes:
    """A CIF's metadata line without its run time (see the module docstring)."""
    if path.suffix != ".cif":
        return data
    tag = b"# argen-meta: "
    lines = data.split(b"\n")
    for k, line in enumerate(lines):
        if line.startswith(tag):
            meta = json.loads(line[len(tag):])
            meta.pop("seconds", None)
            lines[k] = tag + json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
    return b"\n".join(lines)


def run_case(name: str, argv: list[str], work: Path, main) -> dict[str, str]:
    """Run one command in ``work/name`` and return {relative path: sha256} of what it wrote."""
    import os

    case = work / name
    case.mkdir(parents=True)
    (case / "recipe.yaml").write_text(RECIPE)
    cwd = os.getcwd()
    os.chdir(case)
    try:
        code = main([a.replace("{recipe}", "recipe.yaml") for a in argv])
    finally:
        os.chdir(cwd)
    if code != 0:
        raise RuntimeError(f"{name}: argen {' '.join(argv)} exited with {code}")
    out = {}
    for p in sorted(case.rglob("*")):
        if p.is_file() and p.name not in ("recipe.yaml", "manifest.jsonl") and not p.name.startswith("."):
            out[str(p.relative_to(case))] = hashlib.sha256(normalise(p, p.read_bytes())).hexdigest()
    return out


THREADS = 2  # the record's thread count: float sums (and so bytes) may differ with another


def run_all(work: Path) -> dict[str, dict[str, str]]:
    import torch

    import argen
    import argen.io.metadata as metadata
    from argen.cli.app import main

    saved = argen.__version__, metadata.__version__, torch.get_num_threads()
    argen.__version__ = metadata.__version__ = "golden"
    torch.set_num_threads(THREADS)
    try:
        return {name: run_case(name, argv, work, main) for name, argv in COMMANDS}
    finally:
        argen.__version__, metadata.__version__, threads = saved
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = run_all(Path(tmp))
    if "--record" in sys.argv:
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(len(v) for v in result.values())} files in {RECORD}")
    else:
        Path(sys.argv[1]).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
