"""Same seed, same bytes, in every output format argen writes (issue 39's acceptance): each
command runs twice into two folders and every file it writes (outputs, sidecars, previews) is
compared whole, with no field normalised away (a video's PNG contact sheet is the PNG writer the
image case covers); the metadata embedded in each is strict JSON
(no NaN, no numpy values) and carries no run time."""

from __future__ import annotations

import json

import pytest

from argen.cli.app import main

# (modality args, output name, extra flags): the bundled default models, one output format each
CASES = [
    (["text", "-p", "ROMEO:", "--max-new-tokens", "12"], "t.txt", []),
    (["image", "-p", "a red circle in the top left"], "i.png", []),
    (["audio", "-p", "sine C4 at 120 bpm", "--seconds", "0.2"], "a.wav", []),
    (["audio", "-p", "sine C4 at 120 bpm", "--seconds", "0.2"], "a.flac", []),
    (["video", "-p", "a red circle", "--frames", "2", "--steps", "1"], "v.mp4", ["--preview", "p.gif"]),
    (["video", "-p", "a red circle", "--frames", "2", "--steps", "1"], "v.mp4", ["--preview", "p.webp"]),
    (["mesh", "-p", "a cube", "--max-faces", "12"], "m.obj", []),
    (["mesh", "-p", "a cube", "--max-faces", "12"], "m.glb", []),
    (["mesh", "-p", "a cube", "--max-faces", "12"], "m.ply", []),
    (["mesh", "-p", "a cube", "--max-faces", "12"], "m.stl", []),
    (["crystal", "--composition", "SrTiO3", "--keep-invalid", "--max-attempts", "1"], "c.cif", []),
]
TIMINGS = {"seconds", "time", "elapsed", "duration_s", "tokens_per_second", "timestamp", "created"}


def run_in(folder, args, name, extra, capsys) -> dict[str, bytes]:
    folder.mkdir()
    extra = [str(folder / e) if "." in e and not e.startswith("-") else e for e in extra]
    code = main([*args, "--seed", "4", "-q", "-o", str(folder / name), *extra])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()  # the paths it printed
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.parametrize("args, name, extra", CASES, ids=[c[1] + "".join(c[2][1:]) for c in CASES])
def test_the_same_seed_writes_the_same_bytes(args, name, extra, tmp_path, capsys):
    first = run_in(tmp_path / "a", args, name, extra, capsys)
    second = run_in(tmp_path / "b", args, name, extra, capsys)
    assert first.keys() == second.keys() and len(first) >= 1 + bool(extra)
    for file in first:
        assert first[file] == second[file], f"{file}: the same seed wrote other bytes"
    for file in first:
        if file.endswith(".meta.json"):
            continue
        assert main(["info", str(tmp_path / "a" / file), "--json"]) == 0
        meta = json.loads(capsys.readouterr().out)
        json.dumps(meta, allow_nan=False)  # strict JSON: a NaN or an infinity would fail here
        assert meta["seed"] == 4 and not TIMINGS & set(meta), f"{file}: {sorted(TIMINGS & set(meta))} in its metadata"
