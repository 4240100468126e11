"""The shapes dataset (image issue groundwork): grammar, determinism, held-out pairs, and an
analyser that reads ground-truth images back at 98% or better."""

import collections

import numpy as np
import pytest

from argen.errors import UsageError
from argen.io.metadata import read_metadata
from argen.io.png import read_image, write_png
from argen.lab.analysis.shapes import score
from argen.lab.data.shapes import HELD_OUT, VOCABULARY, draw, parse_caption, sample


def test_samples_are_deterministic_and_64x64():
    a, b, c = sample(3, 5), sample(3, 5), sample(3, 6)
    assert a[0] == b[0] and np.array_equal(np.asarray(a[1]), np.asarray(b[1]))
    assert np.asarray(a[1]).shape == (64, 64, 3) and a[0] != c[0]


def test_captions_follow_the_grammar_and_round_trip():
    for i in range(300):
        caption, _, scene = sample(0, i)
        assert set(caption.split()) <= set(VOCABULARY)
        assert parse_caption(caption).caption() == caption
        assert caption.startswith("a ")


def test_training_split_never_shows_a_held_out_pair():
    for i in range(500):
        _, _, scene = sample(1, i, "train")
        assert not {(o.color, o.shape) for o in scene.objects} & HELD_OUT
        if scene.background:
            assert all(o.color != scene.background for o in scene.objects)
    held = [sample(1, i, "heldout")[2] for i in range(50)]
    assert all({(o.color, o.shape) for o in s.objects} & HELD_OUT for s in held)


def test_analyser_reads_ground_truth_at_98_percent():
    right, total = collections.Counter(), collections.Counter()
    for split in ("val", "heldout"):
        for i in range(300):
            _, img, scene = sample(7, i, split)
            for k, v in score(scene, np.asarray(img)).items():
                right[k] += v
                total[k] += 1
    for k in total:
        assert right[k] / total[k] >= 0.98, (k, right[k] / total[k])
    assert total["relation"] > 100 and total["position"] > 100


def test_analyser_notices_wrong_images():
    _, img, scene = sample(2, 0, "val")
    other = next(s for s in (sample(2, i, "val") for i in range(1, 50))
                 if s[2].objects[0].color != scene.objects[0].color and not s[2].relation and not scene.relation)
    assert not score(scene, np.asarray(other[1]))["all"]


def test_relation_is_scored_on_the_objects_it_names():
    """A wrong shape costs the shape category, not the relation; swapped places cost the relation."""
    rng = np.random.default_rng(0)
    asked = parse_caption("a red square left of a blue circle")
    wrong_shape = parse_caption("a red circle left of a blue circle")
    swapped = parse_caption("a red square right of a blue circle")
    res = score(asked, np.asarray(draw(wrong_shape, rng)))
    assert res["relation"] and not res["shape"] and not res["all"]
    res = score(asked, np.asarray(draw(swapped, rng)))
    assert not res["relation"] and res["shape"] and res["color"]
    same_color = parse_caption("a red square above a red circle")
    assert score(same_color, np.asarray(draw(same_color, rng)))["relation"]
    assert not score(same_color, np.asarray(draw(parse_caption("a red square below a red circle"), rng)))["relation"]


@pytest.mark.parametrize("prompt", ["a purple circle", "a red hexagon", "red circle", "a red circle in the middle"])
def test_prompts_outside_the_grammar_are_usage_errors(prompt):
    with pytest.raises(UsageError) as e:
        parse_caption(prompt)
    if "purple" in prompt or "hexagon" in prompt or "middle" in prompt:
        assert "circle" in e.value.hint  # the vocabulary is listed


def test_png_metadata_round_trip_and_corrupt_files(tmp_path):
    _, img, _ = sample(0, 0)
    p = write_png(tmp_path / "x.png", img, {"prompt": "a red circle", "seed": 3})
    assert read_metadata(p)["seed"] == 3
    assert np.array_equal(np.asarray(read_image(p)), np.asarray(img))
    p2 = write_png(tmp_path / "y.png", img, {"prompt": "a red circle", "seed": 3})
    assert p.read_bytes() == p2.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    from argen.errors import ArgenError

    with pytest.raises(ArgenError, match="not a readable image"):
        read_image(bad)


def test_adherence_report_counts_each_category_over_its_own_prompts():
    from argen.lab.data.shapes import parse_caption
    from argen.lab.eval.image import adherence_report

    single = parse_caption("a red circle in the top left")
    loose = parse_caption("a red circle")
    pair = parse_caption("a red circle left of a blue square")
    ok = {"color": True, "shape": True, "background": True}
    results = [
        (single, False, {**ok, "position": True}),
        (single, False, {**ok, "shape": False, "position": True}),
        (loose, False, dict(ok)),  # no stated position: position is not scored
        (pair, False, {**ok, "relation": False}),
        (pair, True, {**ok, "relation": True, "all": True}),  # held out: only in "heldout"
    ]
    r = adherence_report(results)
    assert r["single_object"] == round(2 / 3, 4)  # 2 of the 3 single-object prompts
    assert r["position"] == 1.0 and r["relation"] == 0.0 and r["shape"] == 0.75 and r["heldout"] == 1.0
