"""The video task's training loss: which latent positions count as an object, and how much."""

import numpy as np
import pytest
import torch

from argen.lab.tasks.video import VideoTask, foreground


def test_foreground_marks_the_latent_positions_an_object_touches():
    clips = np.zeros((1, 2, 32, 32, 3), np.uint8)
    clips[0, 0, 5:7, 9:11] = (255, 0, 0)  # 4 px cells: rows 1, columns 2
    clips[0, 0, 20, 20] = (3, 3, 3)  # below the threshold: background
    clips[0, 1, 15:17, 15:17] = (0, 0, 200)  # straddles four cells
    fg = foreground(clips, 8)
    assert fg.shape == (1, 2, 8, 8) and fg.dtype == torch.bool
    assert fg[0, 0].nonzero().tolist() == [[1, 2]]
    assert fg[0, 1].nonzero().tolist() == [[3, 3], [3, 4], [4, 3], [4, 4]]


def task_with(weight: float, shift: float = 1.0) -> VideoTask:
    task = VideoTask.__new__(VideoTask)  # the loss needs no data or codec
    task.block_frames, task.fg_weight, task.time_shift = 2, weight, shift
    return task


@pytest.mark.parametrize("weight", [1.0, 5.0])
def test_object_positions_weigh_more_and_context_frames_not_at_all(weight):
    b, f, c, h = 3, 8, 4, 8
    latents = torch.randn(b, f, c, h, h, generator=torch.Generator().manual_seed(0))
    fg = torch.zeros(b, f, h, h, dtype=torch.bool)
    fg[:, :, 2:4, 5] = True
    task = task_with(weight)
    text, x_t, t, target, w = task.make_batch(latents, torch.ones(b, 12, dtype=torch.long),
                                              torch.Generator().manual_seed(1), fg)
    scored = w.amax(dim=(2, 3)) > 0  # (B, F)
    assert scored.any() and (~scored).any()  # this seed draws context frames too
    assert torch.all(w[~scored] == 0)
    on = w[scored][:, 2:4, 5]
    off = w[scored].clone()
    off[:, 2:4, 5] = 1
    assert torch.all(on == weight) and torch.all(off == 1)

    class Still(torch.nn.Module):  # predicts zero velocity everywhere
        def forward(self, text, x, t):
            return torch.zeros_like(x)

    err = target.pow(2).mean(dim=2)  # (B, F, h, w)
    want = (err * w).sum() / w.sum()
    assert torch.allclose(task.loss(Still(), (text, x_t, t, target, w)), want)
    if weight == 1.0:  # the plain loss: the mean over the scored frames
        assert torch.allclose(want, err.mean(dim=(2, 3))[scored].mean())


def test_object_cells_follow_each_shape():
    from argen.lab.data.bouncing import Clip, Mover, object_cells

    # centre (9.5, 9.5), radius 3, cells of 4 px: columns and rows 1 to 3 are within reach
    circle = Clip([Mover("red", "circle", 3.0, (9.5, 9.5), (0.0, 0.0))])
    square = Clip([Mover("red", "square", 3.0, (9.5, 9.5), (0.0, 0.0))])
    c, s = object_cells(circle, 1, 8, rim=0)[0, 0], object_cells(square, 1, 8, rim=0)[0, 0]
    assert np.argwhere(s).tolist() == [[r, k] for r in (1, 2, 3) for k in (1, 2, 3)]
    # the corner cell (3, 3) starts 2.5 px away on both axes: sqrt(12.5) > 3 misses the disc
    assert c.sum() == 8 and not c[3, 3] and c[1, 3] and c[3, 1] and c[1, 1]


def test_object_cells_cover_every_lit_cell_of_rendered_clips():
    from argen.lab.data import bouncing

    for i in range(6):
        _, frames, clip = bouncing.sample(0, i, "train", 6)
        lit = foreground(frames[None], 8)[0].numpy()  # (F, 8, 8)
        cells = bouncing.object_cells(clip, 6, 8).any(axis=0)
        assert not (lit & ~cells).any()  # the geometry reaches every cell the renderer lit
        assert (cells & ~lit).sum() <= 0.1 * cells.sum()  # and little beyond (faint edges stay dark)


def test_balanced_foreground_gives_every_object_the_same_weight():
    from argen.lab.data.bouncing import Clip, Mover
    from argen.lab.tasks.video import balanced_foreground

    clip = Clip([Mover("red", "circle", 3.0, (6.0, 6.0), (0.0, 0.0)),  # small, top left
                 Mover("blue", "square", 6.0, (24.0, 24.0), (0.0, 0.0))])  # large, bottom right
    maps, ref = balanced_foreground([clip], 2, 8)
    assert maps.shape == (1, 2, 8, 8)
    small, large = maps[0, 0, :4, :4], maps[0, 0, 4:, 4:]
    assert torch.isclose(small.sum(), torch.tensor(ref)) and torch.isclose(large.sum(), torch.tensor(ref))
    assert small.max() > large.max()  # the small object's positions weigh more, each
    assert maps[0, 0, :4, 4:].sum() == 0 and maps[0, 0, 4:, :4].sum() == 0  # the background adds nothing
    again, same = balanced_foreground([clip], 2, 8, ref=2 * ref)
    assert same == 2 * ref and torch.allclose(again, 2 * maps)  # a given ref (the validation's) is used as is


def test_object_balance_needs_a_foreground_weight(tmp_path):
    from argen.errors import UsageError
    from argen.lab.recipes import load_train_recipe

    p = tmp_path / "v.yaml"
    p.write_text("task: video\nname: v\ndata:\n  dataset: bouncing\n  codec: nowhere\n  object_balance: true\n"
                 "model: {}\n")
    with pytest.raises(UsageError, match="object_balance shares out foreground_weight, which is 1"):
        VideoTask(load_train_recipe(p))


def tiny_dit(adaln: bool = False):
    from argen.modalities.video.dit import VideoDiT, VideoModelConfig

    torch.manual_seed(0)
    model = VideoDiT(VideoModelConfig(backbone={"n_layer": 2, "n_head": 2, "d_model": 32, "adaln": adaln},
                                      max_frames=16)).eval()
    for p in model.parameters():  # the head starts at zero: give every weight a value
        torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.mark.parametrize("adaln", [False, True])
def test_clean_copy_pass_equals_denoising_each_block_after_its_clean_context(adaln):
    model = tiny_dit(adaln)
    b, f, fb = 2, 8, 2
    g = torch.Generator().manual_seed(3)
    text = torch.randint(1, 10, (b, 12), generator=g)
    clean, noisy = torch.randn(b, f, 4, 8, 8, generator=g), torch.randn(b, f, 4, 8, 8, generator=g)
    t0 = torch.full((b, f), 0.05)  # lightly noised context
    t = torch.rand(b, f // fb, generator=g).repeat_interleave(fb, dim=1)
    with torch.no_grad():
        got = model.forward_clean_copy(text, clean, t0, noisy, t)
        for k in range(0, f, fb):  # what generation computes: clean blocks before k, then noisy block k
            seq = torch.cat([clean[:, :k], noisy[:, k:k + fb]], dim=1)
            times = torch.cat([t0[:, :k], t[:, k:k + fb]], dim=1)
            want = model(text, seq, times)[:, k:]
            assert torch.allclose(got[:, k:k + fb], want, atol=1e-5), k
    mask = model.clean_copy_mask(f)[0, 0]
    p, n = 12, f * 16
    assert mask.shape == (p + 2 * n, p + 2 * n)
    assert not mask[p + n:, p + n:].logical_and(~torch.block_diag(*[torch.ones(fb * 16, fb * 16)] * (f // fb)).bool()).any()
    assert not mask[:p + n, p + n:].any()  # nothing clean reads a noisy token


def test_clean_copy_batch_scores_every_block_after_its_clean_context():
    b, f, c, h = 64, 8, 4, 8
    latents = torch.randn(b, f, c, h, h, generator=torch.Generator().manual_seed(0))
    fg = torch.zeros(b, f, h, h, dtype=torch.bool)
    fg[:, :, 1, 1] = True
    task = task_with(5.0)
    text, x_t, t, target, w, clean, t0 = task.make_clean_copy_batch(
        latents, torch.ones(b, 12, dtype=torch.long), torch.Generator().manual_seed(1), fg)
    known = t == 0  # first frames of every block given clean in some sequences
    assert known.any() and torch.all(w[known] == 0) and torch.all(w[~known][:, 1, 1] == 5)
    assert torch.all(known[:, 1::2] == 0)  # a 2-frame block has at most its first frame known
    assert torch.equal(known[:, 0::2].any(dim=1), known[:, 0::2].all(dim=1))  # the same in every block of a sequence
    # the noisy frames share their block's time; the clean copy is the latents, lightly noised in some sequences
    scored = ~known[:, 0]
    assert torch.equal(t[scored, 0::2], t[scored, 1::2])
    level = t0[:, 0]
    assert torch.all(t0 == level[:, None]) and (level == 0).any() and (level > 0).any() and level.max() <= 0.1
    assert torch.equal(clean[level == 0], latents[level == 0])
    assert torch.allclose(x_t, (1 - t[..., None, None, None]) * latents + t[..., None, None, None] * (target + latents),
                          atol=1e-5)

    class Still(torch.nn.Module):  # predicts zero velocity; only the clean-copy pass may be called
        def forward_clean_copy(self, text, x0, t0, x, t):
            assert x0 is clean and x is x_t
            return torch.zeros_like(x)

    want = (target.pow(2).mean(dim=2) * w).sum() / w.sum()
    assert torch.allclose(task.loss(Still(), (text, x_t, t, target, w, clean, t0)), want)


def test_clips_are_drawn_by_their_number_of_objects():
    from argen.lab.data.bouncing import Clip, Mover
    from argen.lab.tasks.video import clip_weights

    mover = Mover("red", "circle", 3.0, (9.0, 9.0), (1.0, 0.0))
    clips = [Clip([mover] * (1 + i % 3)) for i in range(30)]  # 10 clips of each count
    p, shares = clip_weights(clips, (1, 2, 3))
    assert shares == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    draws = torch.multinomial(p, 60_000, replacement=True, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.tensor([len(clips[i].movers) for i in draws.tolist()]), minlength=4)[1:]
    assert torch.allclose(counts / 60_000, torch.tensor([1 / 6, 2 / 6, 3 / 6]), atol=0.01)


@pytest.mark.parametrize("line, message", [
    ("  object_weights: [1, -2, 3]", "object_weights are three weights >= 0"),
    ("  object_weights: [0, 0, 0]", "object_weights are three weights >= 0"),
    ("  object_weights: [1, 2]", "data.object_weights"),
    ("  dataset: bogus", ":4: data: data.dataset must be shapes, crystal-csv, shapes3d, melodies or bouncing"),
    ("  layout: interleaved", ":6: data.layout: Input should be 'diffusion-forcing' or 'clean-copy'"),
    ("  frames: 1", ":6: data.frames: Input should be greater than or equal to 2$"),  # this dataset's fields only
    ("  time_shift: 0", ":6: data.time_shift: Input should be greater than 0"),
])
def test_bad_video_data_options(tmp_path, line, message):
    from argen.errors import ArgenError
    from argen.lab.recipes import load_train_recipe

    p = tmp_path / "v.yaml"
    dataset = "" if "dataset:" in line else "  dataset: bouncing\n  codec: nowhere\n"
    p.write_text(f"task: video\nname: v\ndata:\n{dataset}{line}\nmodel: {{}}\n")
    with pytest.raises(ArgenError, match=message):
        load_train_recipe(p)


@pytest.mark.parametrize("layout", ["diffusion-forcing", "clean-copy"])
def test_time_shift_moves_the_noise_times_of_scored_blocks_toward_noise(layout):
    from argen.lab.tasks.video import shift_times

    t = torch.linspace(0, 1, 11)
    assert torch.equal(shift_times(t, 1.0), t)
    s3 = shift_times(t, 3.0)
    assert s3[0] == 0 and s3[-1] == 1 and (s3.diff() > 0).all() and (s3[1:-1] > t[1:-1]).all()
    torch.testing.assert_close(shift_times(s3, 1 / 3), t)  # 1/s undoes s
    torch.testing.assert_close(shift_times(torch.tensor([0.5]), 3.0), torch.tensor([0.75]))
    b, f = 64, 8
    latents = torch.randn(b, f, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    fg = torch.zeros(b, f, 8, 8, dtype=torch.bool)
    text = torch.ones(b, 12, dtype=torch.long)
    times = {}
    for shift in (1.0, 3.0):
        task = task_with(1.0, shift)
        make = task.make_clean_copy_batch if layout == "clean-copy" else task.make_batch
        _, _, t, _, w, *_ = make(latents, text, torch.Generator().manual_seed(2), fg)
        scored = w.amax(dim=(2, 3)) > 0
        times[shift] = t[scored]
    assert times[1.0].numel() == times[3.0].numel() > 0
    torch.testing.assert_close(times[3.0], shift_times(times[1.0], 3.0))  # the same draws, shifted
    assert times[1.0].median() < 0.6 < times[3.0].median()  # uniform: about 0.5; shifted: about 0.75
