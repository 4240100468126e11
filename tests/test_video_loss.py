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
