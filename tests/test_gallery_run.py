"""A real run's gallery in a real browser: a recipe with one job per modality (the bundled models),
then OUT/index.html opened in headless Chromium (tests/browser.py): every output has its card,
every media element loads without a console message, a prompt holding ``<script>`` shows as text,
the filters by job and by grid value work from the page's address, and a screenshot is taken."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from browser import attr, dump_dom, screenshot, settled_dom
from PIL import Image

from argen.cli.app import main

EVIL = "<script>document.title='pwned'</script><b>bold</b>"
RECIPE = {"jobs": [
    {"name": "text", "modality": "text", "prompts": ["ROMEO:"], "max_new_tokens": 8},
    # the second prompt is refused by the shapes vocabulary: two failed samples whose cards show it
    {"name": "image", "modality": "image", "prompts": ["a red circle in the top left", EVIL], "grid": {"cfg": [1.0, 3.0]}},
    {"name": "video", "modality": "video", "prompts": ["a red circle"], "frames": 2, "steps": 1},
    {"name": "audio", "modality": "audio", "prompts": ["sine C4 at 120 bpm"], "seconds": 0.2},
    {"name": "mesh", "modality": "mesh", "prompts": ["a cube"], "max_faces": 12},
    {"name": "crystal", "modality": "crystal", "prompts": ["SrTiO3"], "keep_invalid": True, "max_attempts": 1},
]}
MEDIA = {"image": "img", "video": "video", "audio": "audio", "mesh": "img", "crystal": "img"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery-run")
    (root / "all.yaml").write_text(json.dumps(RECIPE))  # JSON is YAML
    code = main(["run", str(root / "all.yaml"), "-o", str(root / "out"), "-q"])
    assert code == 1  # the two refused image prompts
    return root / "out"


def manifest(out) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_output_of_every_modality_loads_in_the_browser(run_dir, tmp_path):
    records = manifest(run_dir)
    done = [r for r in records if r["status"] == "done"]
    assert sorted(r["job"] for r in done) == ["audio", "crystal", "image", "image", "mesh", "text", "video"]
    dom, console = settled_dom(run_dir / "index.html")
    assert not console, console
    assert '<pre id="page-errors" hidden=""></pre>' in dom
    cards = re.findall(r'<article class="card[^"]*" data-job="([^"]*)" data-status="([^"]*)" data-path="([^"]*)">', dom)
    assert sorted(cards) == sorted((r["job"], r["status"], r["path"]) for r in records)
    for r in done:  # each output's own player or picture, loaded
        src = r.get("preview", r["path"]) if r["modality"] in ("mesh", "crystal") else r["path"]
        if r["modality"] == "text":  # its first characters, as text
            pre = re.search(r'<div class="media"><pre>(.*?)</pre>', dom, re.S)
            assert pre and html.unescape(pre.group(1)) == (run_dir / r["path"]).read_text()
            continue
        tag = re.search(rf'<{MEDIA[r["modality"]]}\b[^>]*\bsrc="{re.escape(src)}"[^>]*>', dom)
        assert tag and 'data-state="loaded"' in tag.group(0), (r["path"], tag and tag.group(0))
    assert (attr(dom, "media-log", "data-loaded"), attr(dom, "media-log", "data-error")) == ("6", "0")
    # the failed samples' prompts and errors are text, and the summary counts them
    prompts = [html.unescape(p) for p in re.findall(r'<p class="prompt">(.*?)</p>', dom, re.S)]
    assert prompts.count(EVIL) == 2 and "<b>bold</b>" not in dom and "pwned" not in re.search("<title>(.*?)</title>", dom).group(1)
    assert "2 failed" in dom and dom.count('class="error"') == 2
    shot = screenshot(run_dir / "index.html", tmp_path / "gallery.png", window="1280,900")
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape == (900, 1280, 3) and img.std() > 20  # a page, not a blank window


@pytest.mark.slow
def test_filters_by_job_and_grid_value_from_the_address(run_dir):
    url = (run_dir / "index.html").resolve().as_uri() + "#job=image&axis%3Acfg=3"  # as the page writes it
    dom, console = dump_dom(url)
    assert not console, console
    cards = re.findall(r'<article class="card[^"]*" data-job="([^"]*)" data-status="[^"]*" data-path="([^"]*)"( hidden="")?>', dom)
    assert len(cards) == 9
    assert sorted(path for _, path, hidden in cards if not hidden) == ["image/0002-0.png", "image/0003-0.png"]  # cfg 3
    assert '<span id="shown">showing 2 of 9</span>' in dom
    dom, _ = dump_dom(url.replace("axis%3Acfg=3", "status=failed"))
    assert '<span id="shown">showing 2 of 9</span>' in dom


@pytest.mark.slow
def test_argen_info_reads_every_preview_of_the_run(run_dir, capsys):
    records = [r for r in manifest(run_dir) if r["status"] == "done"]
    previews = [r["preview"] for r in records if r["modality"] in ("mesh", "crystal")] + ["image-grid.png"]
    assert len(previews) == 3
    for rel in previews:
        assert main(["info", str(run_dir / rel), "--json"]) == 0
        meta = json.loads(capsys.readouterr().out)
        assert meta["generator"] == "argen", rel
        if rel == "image-grid.png":  # the sheet records each cell's seed and grid value
            assert meta["seeds"] == [0, 0] and meta["grid"] == [{"cfg": 1.0}, {"cfg": 3.0}]
        else:
            assert meta["seed"] == 0 and {"mesh": "a cube", "crystal": "data_Sr1Ti1O3"}[rel.split("/")[0]] in meta["prompt"]
    assert Image.open(run_dir / "image-grid.png").size[0] > 2 * 64  # two cells side by side, enlarged
