"""The gallery page (OUT/index.html): built from manifest entries, escaped, cheap to keep up to
date during a run, rebuilt by `argen gallery`, and fast in a real browser with 1,000 outputs."""

from __future__ import annotations

import html
import json
import os
import re
import time

import numpy as np
import pytest
from browser import dump_dom

from argen.batch.gallery import Gallery, make_card
from argen.batch.manifest import Manifest
from argen.io.png import write_png

EVIL = "<script>document.title='pwned'</script><img src=x onerror=alert(1)><b>bold</b> & \"q\""
PARAMS = {  # what a recipe's sample records: every flag of its modality
    "image": {"model": None, "device": "auto", "dtype": "auto", "compile": False, "batch_size": None, "temperature": None,
              "top_k": None, "top_p": None, "cfg": 2.0, "class_label": None, "negative_prompt": None, "sampler": None,
              "cfg_schedule": None, "cfg_interval": None, "more_smooth": False, "inpaint": None, "mask": None, "grid": False},
    "text": {"model": None, "device": "auto", "dtype": "auto", "compile": False, "batch_size": None, "temperature": None,
             "top_k": None, "top_p": None, "cfg": None, "max_new_tokens": 200, "min_p": None, "repetition_penalty": 1.0,
             "stop": [], "draft": None, "lookup": None, "draft_tokens": 4, "quantize": "none", "stream": True, "echo": False},
}


def page_data(page) -> dict:
    """The JSON the page embeds (as the page's own script reads it)."""
    text = page.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def fake_run(out, n: int, modalities=("image", "text"), prompt=lambda k: f"prompt {k}") -> list[dict]:
    """A manifest of ``n`` done samples with their files (images hard-linked to one PNG)."""
    out.mkdir(parents=True, exist_ok=True)
    png = write_png(out / "one.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    entries = []
    for k in range(n):
        modality = modalities[k % len(modalities)]
        job = f"{modality}-job"
        rel = f"{job}/{k:04d}.{'png' if modality == 'image' else 'txt'}"
        (out / job).mkdir(exist_ok=True)
        if modality == "image":
            os.link(png, out / rel)
        else:
            (out / rel).write_text("To be, or not to be, that is the question. " * 40)
        params = dict(PARAMS[modality], **({"cfg": [1.0, 2.0, 4.0][k % 3]} if modality == "image" else {}))
        e = {"key": f"k{k}", "job": job, "index": k, "modality": modality, "params": params, "prompt": prompt(k),
             "seed": k, "path": rel, "status": "done", "sha256": "0" * 64, "seconds": 0.1, "model": f"{modality}-model"}
        entries.append(e)
    m = Manifest(out / "manifest.jsonl")
    for e in entries:
        m.append(e)
    return entries


def test_cards_carry_prompt_seed_model_flags_and_grid_values(tmp_path):
    fake_run(tmp_path, 12)
    page = Gallery.from_manifest(tmp_path).build()
    data = page_data(page)
    assert len(data["cards"]) == 12
    jobs = {j["name"]: j for j in data["jobs"]}
    assert jobs["text-job"]["flags"] == {"max_new_tokens": 200}  # shared non-default flags, once per job
    images = [c for c in data["cards"] if c["m"] == "image"]
    assert [c["g"] for c in images[:3]] == [{"cfg": 1.0}, {"cfg": 4.0}, {"cfg": 2.0}]  # the grid axis, per card
    assert all(c["model"] == "image-model" and c["p"].startswith("prompt ") for c in images)
    text = next(c for c in data["cards"] if c["m"] == "text")
    assert text["t"].startswith("To be, or not to be") and len(text["t"]) <= 400
    rows = {r["name"]: r for r in data["summary"]["jobs"]}
    assert rows["image-job"]["done"] == 6 and rows["image-job"]["skipped"] is None  # rebuilt: no run to compare with
    assert (tmp_path / "image-job-grid.png").is_file() and rows["image-job"]["sheet"] == "image-job-grid.png"


def test_prompts_and_metadata_are_escaped(tmp_path):
    entries = fake_run(tmp_path, 4, prompt=lambda k: EVIL + "</script><!--")
    m = Manifest(tmp_path / "manifest.jsonl")  # the latest entry of a key counts
    m.append({**entries[0], "params": {**entries[0]["params"], "negative_prompt": EVIL}, "model": EVIL})
    m.append({**entries[1], "status": "failed", "error": EVIL})
    page = Gallery.from_manifest(tmp_path).build()
    raw = page.read_text()
    assert "<script>document" not in raw and "<b>bold" not in raw and "</script><!--" not in raw
    assert page_data(page)["cards"][0]["p"] == EVIL + "</script><!--"  # intact once parsed
    dom, console = dump_dom(page)
    assert not console, console
    assert re.search(r"<title>(.*?)</title>", dom).group(1) == f"{tmp_path.name} \u00b7 argen gallery"
    assert "<b>bold</b>" not in dom and '<img src="x"' not in dom
    prompts = re.findall(r'<p class="prompt">(.*?)</p>', dom, re.S)
    assert len(prompts) == 4 and all(html.unescape(p) == EVIL + "</script><!--" for p in prompts)
    shown = html.escape(EVIL, quote=False)
    assert f'<p class="error">{shown}</p>' in dom  # the error,
    assert f'<span class="flag axis">negative_prompt={shown}</span>' in dom  # a flag
    assert f"seed 0 \u00b7 {shown}</p>" in dom  # and the model, as text


def test_the_page_is_cheap_to_keep_up_to_date(tmp_path):
    now = [0.0]
    entries = fake_run(tmp_path, 300)
    g = Gallery(tmp_path, samples=[], interval=2.0, clock=lambda: now[0])
    for e in entries[:200]:  # all within one interval: one write
        g.add(e)
    assert g.writes == 1
    now[0] = 2.5
    for e in entries[200:]:
        g.add(e)
    assert g.writes == 2
    assert g.finish() == tmp_path / "index.html" and g.writes == 3
    page = (tmp_path / "index.html").read_text()
    assert 'http-equiv="refresh"' not in page  # only a live page reloads itself
    assert len(page_data(tmp_path / "index.html")["cards"]) == 300


def test_a_gallery_that_cannot_be_written_never_stops_the_run(tmp_path, capsys):
    (tmp_path / "out").write_text("a file where the folder should be")
    g = Gallery(tmp_path / "out", samples=[])
    for k in range(3):
        g.add({"key": f"k{k}", "job": "j", "index": k, "modality": "text", "params": {}, "path": "x.txt", "status": "done"})
    assert g.finish() is None
    assert capsys.readouterr().err.count("warning: the gallery") == 1


def test_missing_files_and_failures_show_without_media(tmp_path):
    entries = fake_run(tmp_path, 2)
    (tmp_path / entries[0]["path"]).unlink()
    assert make_card(entries[0], tmp_path)["st"] == "missing"
    failed = make_card({**entries[1], "status": "failed", "error": "boom"}, tmp_path)
    assert failed["st"] == "failed" and failed["e"] == "boom" and "t" not in failed


def test_argen_gallery_rebuilds_and_refuses_a_folder_without_manifest(cli, tmp_path):
    fake_run(tmp_path / "out", 3)
    code, out, _ = cli("gallery", tmp_path / "out")
    assert code == 0 and out.strip() == str(tmp_path / "out" / "index.html")
    code, out, err = cli("gallery", tmp_path)
    assert code == 2 and err.startswith(f"Error: {tmp_path} holds no manifest.jsonl") and out == ""
    assert not (tmp_path / "index.html").exists()


@pytest.mark.parametrize("modalities", [("image", "text"), ("text",)])
def test_a_thousand_outputs_load_fast_and_weigh_under_a_megabyte(tmp_path, modalities):
    fake_run(tmp_path, 1000, modalities, prompt=lambda k: f"a red circle in the top left, take {k} " + "x" * 60)
    t0 = time.perf_counter()
    page = Gallery.from_manifest(tmp_path).build()
    build_s = time.perf_counter() - t0
    size = page.stat().st_size
    assert size < 1_000_000, size
    dom, console = dump_dom(page, window="1400,1000")
    assert not console, console
    load_ms = int(re.search(r'<body[^>]*data-load-ms="(\d+)"', dom).group(1))
    assert load_ms < 2000, load_ms
    assert dom.count('<article class="card"') == 1000
    dom, console = dump_dom(page, budget_ms=3000, window="1400,1000")
    loaded, errors = (int(re.search(rf'data-{k}="(\d+)"', dom).group(1)) for k in ("loaded", "error"))
    assert errors == 0 and not console
    if "image" in modalities:
        assert 0 < loaded < 100  # media load lazily: only what is near the viewport
    else:
        assert loaded == 0
    print(f"\n{modalities}: {size / 1e3:.0f} kB, built in {build_s:.2f} s, load event at {load_ms} ms")


def test_the_run_reserves_the_gallery_and_preview_names(tmp_path):
    from argen.batch.plan import build_plan
    from argen.batch.recipe import load_run_recipe
    from argen.errors import ArgenError

    def plan(jobs: str):
        p = tmp_path / "r.yaml"
        p.write_text(f"jobs:\n{jobs}")
        return build_plan(*load_run_recipe(p), p)

    with pytest.raises(ArgenError, match="would replace the run's own index.html"):
        plan('  - {name: a, modality: text, prompts: ["x"], output: "index.html"}\n')
    with pytest.raises(ArgenError, match="would replace the run's own g-grid.png"):
        plan('  - {name: g, modality: image, prompts: ["x"], grid: {cfg: [1, 2]}}\n'
             '  - {name: b, modality: image, prompts: ["x"], output: "g-grid.png"}\n')
    with pytest.raises(ArgenError, match=r"two samples would write m.obj.png \(also a #0\)"):
        plan('  - {name: a, modality: image, prompts: ["x"], output: "m.obj.png"}\n'
             '  - {name: m, modality: mesh, prompts: ["a cube"], output: "m.obj"}\n')
