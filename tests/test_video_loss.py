"""The video task's training loss: which latent positions count as an object, and how much."""

import numpy as np
import pytest
import torch

from argen.tasks.video import VideoTask, foreground


def test_foreground_marks_the_latent_positions_an_object_touches():
    clips = np.zeros((1, 2, 32, 32, 3), np.uint8)
    clips[0, 0, 5:7, 9:11] = (255, 0, 0)  # 4 px cells: rows 1, columns 2
    clips[0, 0, 20, 20] = (3, 3, 3)  # below the threshold: background
    clips[0, 1, 15:17, 15:17] = (0, 0, 200)  # straddles four cells
    fg = foreground(clips, 8)
    assert fg.shape == (1, 2, 8, 8) and fg.dtype == torch.bool
    assert fg[0, 0].nonzero().tolist() == [[1, 2]]
    assert fg[0, 1].nonzero().tolist() == [[3, 3], [3, 4], [4, 3], [4, 4]]


def task_with(weight: float) -> VideoTask:
    task = VideoTask.__new__(VideoTask)  # the loss needs no data or codec
    task.block_frames, task.fg_weight = 2, weight
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
    from argen.data.bouncing import Clip, Mover, object_cells

    # centre (9.5, 9.5), radius 3, cells of 4 px: columns and rows 1 to 3 are within reach
    circle = Clip([Mover("red", "circle", 3.0, (9.5, 9.5), (0.0, 0.0))])
    square = Clip([Mover("red", "square", 3.0, (9.5, 9.5), (0.0, 0.0))])
    c, s = object_cells(circle, 1, 8, rim=0)[0, 0], object_cells(square, 1, 8, rim=0)[0, 0]
    assert np.argwhere(s).tolist() == [[r, k] for r in (1, 2, 3) for k in (1, 2, 3)]
    # the corner cell (3, 3) starts 2.5 px away on both axes: sqrt(12.5) > 3 misses the disc
    assert c.sum() == 8 and not c[3, 3] and c[1, 3] and c[3, 1] and c[1, 1]


def test_object_cells_cover_every_lit_cell_of_rendered_clips():
    from argen.data import bouncing

    for i in range(6):
        _, frames, clip = bouncing.sample(0, i, "train", 6)
        lit = foreground(frames[None], 8)[0].numpy()  # (F, 8, 8)
        cells = bouncing.object_cells(clip, 6, 8).any(axis=0)
        assert not (lit & ~cells).any()  # the geometry reaches every cell the renderer lit
        assert (cells & ~lit).sum() <= 0.1 * cells.sum()  # and little beyond (faint edges stay dark)


def test_balanced_foreground_gives_every_object_the_same_weight():
    from argen.data.bouncing import Clip, Mover
    from argen.tasks.video import balanced_foreground

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
    from argen.recipes import load_train_recipe

    p = tmp_path / "v.yaml"
    p.write_text("task: video\nname: v\ndata:\n  dataset: bouncing\n  codec: nowhere\n  object_balance: true\n"
                 "model: {}\n")
    with pytest.raises(UsageError, match="object_balance shares out foreground_weight, which is 1"):
        VideoTask(load_train_recipe(p))
