"""Training on the model's own frames (``data.rollout``): which frames a rollout replaces, that
they are the model's own continuation, and the recipe checks."""

import pytest
import torch

from argen.lab.tasks.video import VideoTask
from argen.lab.tasks.video_rollout import Rollout, plan_rollout, with_generated_context


def task_with(rollout: float, steps: int = 3) -> VideoTask:
    from tests.test_video_loss import task_with as plain_task  # the batch needs no data or codec

    task = plain_task(1.0)
    task.rollout, task.rollout_steps = rollout, steps
    return task


def batch(task: VideoTask, rollout: float, seed: int = 1, b: int = 6, f: int = 16):
    latents = torch.randn(b, f, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.arange(1, 13).repeat(b, 1)
    fg = torch.zeros(b, f, 8, 8, dtype=torch.bool)
    return latents, task.make_batch(latents, text, torch.Generator().manual_seed(seed), fg, rollout)


def test_plan_leaves_a_true_block_a_generated_one_and_one_to_score():
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        rows, true_blocks, ctx_blocks = plan_rollout(8, 8, 0.5, gen)
        assert 1 <= true_blocks <= 3 and true_blocks < ctx_blocks < 8
        assert rows.unique().numel() == rows.numel() and (rows < 8).all()
        seen.add((true_blocks, ctx_blocks))
    assert len(seen) == 6 + 5 + 4  # every pair is drawn: 1-3 true blocks, context up to block 7
    assert plan_rollout(3, 3, 1.0, gen)[1:] == (1, 2)  # the shortest window: one block of each


@pytest.mark.parametrize("seed", range(4))
def test_rollout_rows_score_only_the_blocks_after_the_generated_ones(seed):
    latents, (text, x_t, t, target, w, r) = batch(task_with(1.0), 1.0, seed)
    assert isinstance(r, Rollout) and r.rows.tolist() == list(range(6))  # share 1: every row
    assert r.first % 2 == 0 and 2 <= r.first < r.end < 16 and r.end % 2 == 0
    scored = w.amax(dim=(2, 3)) > 0  # (B, F)
    assert not scored[:, :r.end].any() and scored[:, r.end:].all()  # no known frames in a rollout row
    assert (t[:, :r.end] <= 0.1).all()  # context: clean or lightly noised
    assert torch.equal(r.latents, latents) and torch.equal(r.text, torch.arange(1, 13).repeat(6, 1))
    assert torch.equal(r.level, t[:, 0])


def test_no_rollout_share_draws_the_plain_batch():
    task = task_with(0.0)
    _, plain = batch(task, 0.0)
    _, again = batch(task, 0.0)
    assert len(plain) == 5 and all(torch.equal(a, b) for a, b in zip(plain, again))
    latents, (_, x_t, t, _, w, r) = batch(task_with(0.5), 0.5, seed=3)
    assert 0 < len(r.rows) < 6  # some rows roll out, the others are the plain layout's
    others = torch.ones(6, dtype=torch.bool)
    others[r.rows] = False
    scored = w.amax(dim=(2, 3)) > 0
    assert scored[others].any()


def test_generated_context_is_the_models_own_continuation():
    from argen.engine.sampling.block_diffusion import extend
    from tests.test_video_loss import tiny_dit

    model = tiny_dit().train()
    latents, (text, x_t, t, target, w, r) = batch(task_with(0.6, steps=2), 0.6, seed=5)
    out = with_generated_context(model, x_t, r)
    assert model.training  # the rollout ran in eval mode and gave the mode back
    made = extend(model.eval(), r.text, r.latents[:, :r.first], r.end - r.first, steps=2, context_frames=r.end,
                  generator=torch.Generator().manual_seed(r.seed))
    c = r.level[:, None, None, None, None]
    noise = x_t[r.rows, r.first:r.end] - (1 - c) * latents[r.rows, r.first:r.end]  # c eps, as drawn
    want = (1 - c) * made + noise
    torch.testing.assert_close(out[r.rows, r.first:r.end], want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(made, latents[r.rows, r.first:r.end], atol=0.1)  # it is not the true frames
    changed = torch.zeros_like(out, dtype=torch.bool)
    changed[r.rows, r.first:r.end] = True
    assert torch.equal(out[~changed], x_t[~changed])  # everything else as it was
    # the loss reads the generated context, and its gradient flows
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append(args[1]))  # the rollout's passes are cached ones
    loss = task_with(0.6).loss(model.train(), (text, x_t, t, target, w, r))
    assert len(seen) == 1 and torch.equal(seen[0], out) and loss.requires_grad


@pytest.mark.parametrize("lines, message", [
    ("  rollout: 1.5\n", "data.rollout: Input should be less than or equal to 1"),
    ("  rollout: 0.5\n  layout: clean-copy\n", "data.rollout works with the diffusion-forcing layout"),
])
def test_bad_rollout_options(tmp_path, lines, message):
    from argen.errors import ArgenError
    from argen.lab.recipes import load_train_recipe

    p = tmp_path / "v.yaml"
    p.write_text(f"task: video\nname: v\ndata:\n  dataset: bouncing\n  codec: nowhere\n{lines}model: {{}}\n")
    with pytest.raises(ArgenError, match=message):
        VideoTask(load_train_recipe(p))


def test_rollout_needs_three_blocks():
    from types import SimpleNamespace

    from argen.errors import UsageError
    from argen.modalities.video.text import CaptionVocab

    task = task_with(0.5)
    task.frames, task.vocab = 4, CaptionVocab()
    task.codec = SimpleNamespace(cfg=SimpleNamespace(latent_channels=4, latent_size=8))
    with pytest.raises(UsageError, match="needs windows of 3 blocks or more; data.frames is 4 at 2 frames"):
        task.build_model({})
