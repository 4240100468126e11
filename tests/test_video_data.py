"""The video groundwork: the bouncing-objects dataset, the segmentation `argen eval video`
relies on, and MP4 I/O (any clip in, H.264 out, metadata both ways)."""

from __future__ import annotations

import numpy as np
import pytest

from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata, read_metadata
from argen.io.video import read_video, write_mp4
from argen.lab.analysis.bouncing import colour_areas, keeps_objects
from argen.lab.data import bouncing


def test_clips_are_deterministic_and_follow_the_spec():
    cap, frames, clip = bouncing.sample(0, 7, "val")
    cap2, frames2, _ = bouncing.sample(0, 7, "val")
    assert cap == cap2 and np.array_equal(frames, frames2)
    assert frames.shape == (32, 32, 32, 3) and frames.dtype == np.uint8
    assert bouncing.parse_caption(cap) == [(m.color, m.shape) for m in clip.movers]
    for i in range(40):
        _, _, c = bouncing.sample(0, i)
        assert 1 <= len(c.movers) <= 3 and len({m.color for m in c.movers}) == len(c.movers)
        for m in c.movers:
            assert 3 <= m.radius <= 6 and 1 <= np.hypot(*m.vel) <= 3


def test_motion_is_constant_velocity_with_elastic_bounces():
    m = bouncing.Mover("red", "circle", 4.0, (10.0, 16.0), (3.0, 0.0))
    xs = m.positions(40)[:, 0]
    assert xs.min() >= 4.0 - 1e-9 and xs.max() <= 28.0 + 1e-9
    assert np.allclose(np.abs(np.diff(xs))[np.abs(np.diff(xs)) > 2.99], 3.0)  # speed kept between bounces
    steps = np.diff(xs)
    assert (steps > 0).any() and (steps < 0).any()  # it came back off a wall


def test_colliding_objects_exchange_velocities_head_on():
    a = bouncing.Mover("red", "circle", 3.0, (10.0, 16.0), (2.0, 0.0))
    b = bouncing.Mover("blue", "circle", 3.0, (22.0, 16.0), (-2.0, 0.0))
    xa, xb = (t[:, 0] for t in bouncing.Clip([a, b], collide=True).tracks(4))
    # they touch (centres 6 px apart) after 1.5 frames and go back as they came: equal masses
    assert np.allclose(xa, [10, 12, 12, 10], atol=0.3) and np.allclose(xb, [22, 20, 20, 22], atol=0.3)
    assert np.allclose(bouncing.Clip([a, b]).tracks(4)[0][:, 0], [10, 12, 14, 16])  # without: they pass


def test_colliding_clips_never_overlap_and_keep_their_speeds():
    touched = 0
    for i in range(60):
        _, frames, clip = bouncing.sample(1, i, "train", 24, collide=True)
        assert np.array_equal(frames, bouncing.sample(1, i, "train", 24, collide=True)[1])
        tracks, m = clip.tracks(24), clip.movers
        for j in range(len(m)):
            for k in range(j + 1, len(m)):
                gap = np.hypot(*(tracks[j] - tracks[k]).T) - m[j].reach() - m[k].reach()
                assert gap.min() > -0.3  # at most a fraction of a pixel between checks
                touched += gap.min() < 0.5
        speeds = np.hypot(*np.diff(np.stack(tracks), axis=1).transpose(2, 0, 1))
        assert speeds.max() < 4.5  # elastic: exchanges between objects of 1-3 px a frame
        assert keeps_objects(frames, {o.color for o in m})
    assert touched >= 20  # and they do meet


@pytest.mark.parametrize("text", ["a red triangle", "a red circle and a red square", "two circles", ""])
def test_bad_captions(text):
    with pytest.raises(UsageError):
        bouncing.parse_caption(text)


def test_segmentation_reads_ground_truth_clips():
    kept = [keeps_objects(f, {m.color for m in c.movers}) for _, f, c in (bouncing.sample(3, i, "val") for i in range(100))]
    assert np.mean(kept) >= 0.97


def test_segmentation_notices_a_missing_or_recoloured_object():
    _, frames, clip = bouncing.sample(0, 2, "val")
    colours = {m.color for m in clip.movers}
    assert keeps_objects(frames, colours)
    assert not keeps_objects(np.zeros_like(frames), colours)
    assert not keeps_objects(frames, colours | {"x"})
    assert colour_areas(np.zeros((32, 32, 3), np.uint8)) == {}


def test_mp4_round_trip_with_metadata(tmp_path):
    _, frames, _ = bouncing.sample(0, 3, "val")
    path = write_mp4(tmp_path / "clip.mp4", frames, 8, build_metadata(prompt="p", seed=5))
    back = read_video(path, 32, 8)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 3  # H.264 at crf 18
    assert read_metadata(path)["seed"] == 5
    assert read_video(path, 32, 16).shape[0] == 64  # upsampled in time by repeating frames
    with pytest.raises(UsageError):
        write_mp4(tmp_path / "clip.avi", frames, 8)


def _odd_clip_with_audio(path, frames=48, fps=24):
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 50, 38, "yuv420p"
        aus = out.add_stream("aac", rate=16000, layout="mono")
        for i in range(frames):
            img = np.zeros((38, 50, 3), np.uint8)
            img[10:20, i % 45:i % 45 + 5] = 255
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.float32), format="fltp", layout="mono")
        sound.sample_rate = 16000
        for p in [*aus.encode(sound), *aus.encode(None), *vs.encode(None)]:
            out.mux(p)


def test_any_clip_is_cropped_resized_and_resampled(tmp_path):
    path = tmp_path / "odd.mp4"
    _odd_clip_with_audio(path)  # 50x38, 24 fps, 2 s, with an audio track
    clip = read_video(path, 32, 8)
    assert clip.shape == (16, 32, 32, 3)
    odd = write_mp4(tmp_path / "odd_out.mp4", np.zeros((3, 31, 33, 3), np.uint8), 8)
    assert read_video(odd, 32, 8).shape == (3, 32, 32, 3)


def test_bad_video_inputs(tmp_path):
    with pytest.raises(ArgenError, match="not found"):
        read_video(tmp_path / "none.mp4", 32, 8)
    path = tmp_path / "odd.mp4"
    _odd_clip_with_audio(path)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArgenError, match="not a readable video"):
        read_video(cut, 32, 8)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ArgenError, match="not a readable video"):
        read_video(text, 32, 8)
