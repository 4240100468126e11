"""Preview pictures: their sizes, what they show (crystal colours from Jmol's table, atoms once,
a row of video frames per second, a dBFS scale) and the metadata `argen info` reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from argen.io.element_colors import JMOL, element_rgb
from argen.io.sheet import GAP, LINE, captioned_sheet

META = {"generator": "argen", "prompt": "caf\u00e9 <b> $x$", "seed": 7, "model": "m"}


def info(cli, path) -> dict:
    code, out, err = cli("info", path, "--json")
    assert code == 0, err
    return json.loads(out)


def colour_pixels(path, rgb) -> int:
    return int(np.all(np.asarray(Image.open(path).convert("RGB")) == np.array(rgb), axis=-1).sum())


def test_grid_sheet_cells_are_captioned_and_enlarged():
    images = [np.full((64, 64, 3), 40 * k, np.uint8) for k in range(5)]
    sheet = captioned_sheet(images, [[f"seed {k}", "cfg=2.0"] for k in range(5)], cols=3)
    cell_h = 128 + 2 * LINE + GAP  # 64 px enlarged twice, two caption lines
    assert sheet.shape == (2 * (cell_h + GAP) + GAP, 3 * (128 + GAP) + GAP, 3)
    assert (sheet[GAP:GAP + 128, GAP + 128 + GAP:GAP + 2 * 128 + GAP] == 40).all()  # cell 1, whole
    caption = sheet[GAP + 128:GAP + 128 + 2 * LINE, GAP:GAP + 128]
    assert (caption < 128).any() and (caption == 255).mean() > 0.7  # dark text on white


def test_crystal_preview_colours_atoms_once_lattice_and_info(cli, tmp_path):
    from pymatgen.core import Lattice, Structure

    from argen.io.cif_preview import HEIGHT, WIDTH, atoms, caption, spacegroup, write_cell_preview

    # SrTiO3 with sites given on the far faces (x = 1): each must still be drawn once
    s = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                  [[1, 1, 1], [0.5, 0.5, 0.5], [0.5, 0.5, 1], [0.5, 0.99999999, 0.5], [0, 0.5, 0.5]], coords_are_cartesian=False)
    drawn = atoms(s)
    assert len(drawn) == 5 and all(((a["frac"] >= 0) & (a["frac"] < 1)).all() for a in drawn)
    assert {a["element"]: a["rgb"] for a in drawn} == {"Sr": (0, 255, 0), "Ti": (191, 194, 199), "O": (255, 13, 13)}
    assert spacegroup(s) == "Pm-3m (221)"
    assert caption(s, "Pm-3m (221)").splitlines() == [
        "a = 3.9050 \u00c5    b = 3.9050 \u00c5    c = 3.9050 \u00c5",
        "\u03b1 = 90.00\u00b0    \u03b2 = 90.00\u00b0    \u03b3 = 90.00\u00b0", "space group Pm-3m (221)"]
    path = write_cell_preview(tmp_path / "c.png", s, META, title="SrTiO3")
    assert Image.open(path).size == (WIDTH, HEIGHT)
    for el in ("Sr", "Ti", "O"):  # flat fills in the table's exact colours
        assert colour_pixels(path, element_rgb(el)) > 100, el
    assert colour_pixels(path, (31, 119, 180)) == 0  # matplotlib's first default colour, the old oxygen blue
    assert info(cli, path)["prompt"] == META["prompt"]


def test_the_colour_table_is_jmols():
    # spot checks against https://jmol.sourceforge.net/jscolors/
    assert (JMOL["H"], JMOL["C"], JMOL["N"], JMOL["O"], JMOL["Fe"], JMOL["Au"]) == \
        ("FFFFFF", "909090", "3050F8", "FF0D0D", "E06633", "FFD123")
    assert len(JMOL) == 109 and element_rgb("Xx") == (255, 20, 147)


def test_mesh_preview_three_views_counts_and_info(cli, tmp_path):
    import trimesh

    from argen.io.mesh_preview import CAPTION, PANEL, counts, render, write_preview

    mesh = trimesh.creation.cylinder(radius=0.2, height=1.0, sections=24)
    assert counts(mesh) == "96 faces, 50 vertices"
    img = render(mesh)
    assert img.shape == (PANEL + CAPTION, 3 * PANEL, 3)
    # each of the three panels shows the mesh (shaded blue-grey pixels), and they differ
    panels = [img[:PANEL, k * PANEL:(k + 1) * PANEL] for k in range(3)]
    for p in panels:
        assert ((p[..., 2] > p[..., 0] + 40) & (p[..., 2] > 100)).sum() > 500
    assert not np.array_equal(panels[0], panels[1]) and not np.array_equal(panels[1], panels[2])
    path = write_preview(tmp_path / "m.png", mesh, META)
    assert Image.open(path).size == (3 * PANEL, PANEL + CAPTION) and info(cli, path)["seed"] == 7


def test_spectrogram_axes_dbfs_and_info(cli, tmp_path):
    from argen.io.spectrogram import HEIGHT, WIDTH, stft_dbfs, write_spectrogram

    sr = 16000
    t = np.arange(sr) / sr
    db = stft_dbfs(np.sin(2 * np.pi * 1000 * t))  # a full-scale 1 kHz sine
    assert db.shape[0] == 257 and abs(db[32].max()) < 0.5 and db[32].max() == db.max()  # bin 32 = 1000 Hz, 0 dBFS
    assert abs(stft_dbfs(0.1 * np.sin(2 * np.pi * 1000 * t))[32].max() + 20) < 0.5  # -20 dBFS
    path = write_spectrogram(tmp_path / "s.png", 0.5 * np.sin(2 * np.pi * 440 * t), sr, META)
    assert Image.open(path).size == (WIDTH, HEIGHT)
    assert info(cli, path)["prompt"] == META["prompt"]


def test_video_contact_sheet_one_row_per_second(cli, tmp_path):
    from argen.io.video_preview import sheet_rows
    from argen.modalities.video.pipeline import VideoOutput

    frames = np.stack([np.full((32, 32, 3), 10 * k, np.uint8) for k in range(20)])  # frame k is grey 10k
    assert [(s, len(idx)) for s, idx in sheet_rows(20, 8.0)] == [(0, 8), (1, 8), (2, 4)]
    out = VideoOutput(index=0, seed=7, prompt="a red circle", seconds=0.0, metadata=META, frames=frames, fps=8.0)
    path = out.save_preview(tmp_path / "sheet.png")
    img = np.asarray(Image.open(path))
    label = 44
    assert img.shape == (3 * (32 + GAP) + GAP, label + 8 * (32 + GAP) + GAP, 3)
    row, col = 1, 3  # second 1, its fourth frame: frame 11
    y, x = GAP + row * (32 + GAP), label + col * (32 + GAP)
    assert (img[y:y + 32, x:x + 32] == 110).all()
    assert info(cli, path)["seed"] == 7
    assert len(sheet_rows(10_000, 8.0)) == 60 and max(len(i) for _, i in sheet_rows(2400, 240.0)) == 24


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animated_video_preview_loops_at_the_frame_rate_with_metadata(cli, tmp_path, suffix):
    from argen.modalities.video.pipeline import VideoOutput

    frames = np.stack([np.full((32, 32, 3), 20 * k, np.uint8) for k in range(6)])
    out = VideoOutput(index=0, seed=7, prompt="x", seconds=0.0, metadata=META, frames=frames, fps=8.0)
    path = out.save_preview(tmp_path / f"anim{suffix}")
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (32, 32) and im.info.get("loop") == 0
        im.load()  # Pillow's WebP reader fills in the frame's duration once the frame is decoded
        assert abs(im.info["duration"] - 125) <= 5  # 1/8 s (GIF counts in hundredths)
    assert info(cli, path) == META  # the prompt's non-ASCII characters and markup survive
    with pytest.raises(Exception, match="exists"):
        out.save_preview(path)


def test_video_preview_flag_refuses_other_formats_before_any_work(cli, tmp_path):
    code, out, err = cli("video", "-p", "a red circle", "--preview", tmp_path / "x.jpg", "-o", tmp_path / "v.mp4")
    assert code == 2 and err.splitlines()[0] == f"Error: --preview {tmp_path / 'x.jpg'}: previews are written as PNG, GIF or WEBP"
    assert not list(tmp_path.iterdir())

