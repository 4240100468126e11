"""The image task's training loss with ``data.parallel_share``: part of each batch stops after the
token-by-token scales, which must not change what those tokens are trained towards."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import UsageError
from argen.lab.data.shapes import VOCABULARY
from argen.lab.tasks.image import ImageTask
from argen.lab.train import attention_kernel
from argen.modalities.image.layout import ImageLayout

SCALES = [1, 2, 4, 8]


def layout(raster_scales: int) -> ImageLayout:
    return ImageLayout(words=list(VOCABULARY), codebook_size=32, scales=SCALES, dataset="shapes",
                       raster_scales=raster_scales)


def task_with(share: float, raster_scales: int = 3) -> ImageTask:
    task = ImageTask.__new__(ImageTask)  # the loss needs no data or tokenizer
    task.layout = layout(raster_scales)
    task.recipe = SimpleNamespace(data=SimpleNamespace(parallel_share=share))
    return task


def model_and_batch(lay: ImageLayout, b: int = 6):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**lay.transformer_fields(), n_layer=2, d_model=32, n_head=4,
                                          pos_emb="learned")).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.5)  # sharp enough that logits differ by position
    g = torch.Generator().manual_seed(1)
    captions = torch.stack([torch.tensor(lay.caption_ids("a red circle in the top left"))] * b)
    tokens = torch.randint(0, lay.codebook_size, (b, lay.num_tokens), generator=g)
    return model, captions, tokens


def per_token_ce(model, lay, captions, tokens) -> torch.Tensor:
    """(B, L) cross-entropy of every image token from one full forward pass."""
    logits = model(torch.cat([captions, lay.inputs(tokens)], dim=1))[:, lay.prefix_len:, :lay.codebook_size]
    return F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")


def test_raster_tokens_cost_the_same_with_or_without_the_parallel_scales():
    task = task_with(1.0)
    lay = task.layout
    model, captions, tokens = model_and_batch(lay)
    n = lay.num_raster
    assert n == 21  # the 1x1, 2x2 and 4x4 codes
    with torch.no_grad():
        cut = task.token_loss(model, captions, tokens[:, :n], reduction="none").view(len(tokens), n)
        whole = per_token_ce(model, lay, captions, tokens)
    torch.testing.assert_close(cut, whole[:, :n], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(whole[:, :n].mean(), whole.mean())  # the parallel scale's tokens do count


@pytest.mark.parametrize("share, full", [(1.0, 6), (0.5, 3), (0.1, 1)])
def test_parallel_share_weighs_every_predicted_token_once(share, full):
    task = task_with(share)
    lay = task.layout
    model, captions, tokens = model_and_batch(lay)
    with torch.no_grad():
        got = task.loss(model, (captions, tokens))
        ce = per_token_ce(model, lay, captions, tokens)
    n = lay.num_raster
    expected = (ce[:full].sum() + ce[full:, :n].sum()) / (ce[:full].numel() + ce[full:, :n].numel())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_parallel_share_needs_token_by_token_scales(tmp_path):
    from argen.lab.recipes import load_train_recipe
    from tests.conftest import tiny_image_model

    folder = tiny_image_model(tmp_path / "m", SCALES)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("\n".join(["task: image", "name: x", "data:", "  dataset: shapes", "  train_size: 4",
                                 "  val_size: 2", f"  tokenizer: {folder / 'tokenizer'}", "  parallel_share: 0.5",
                                 "model: {n_layer: 1, n_head: 2, d_model: 32}"]) + "\n")
    with pytest.raises(UsageError, match="parallel_share 0.5 needs raster_scales above 1"):
        ImageTask(load_train_recipe(recipe))


def test_math_attention_kernel_gives_the_same_loss():
    task = task_with(0.5)
    model, captions, tokens = model_and_batch(task.layout)
    with torch.no_grad():
        auto = task.loss(model, (captions, tokens))
        with attention_kernel("math"):
            math = task.loss(model, (captions, tokens))
    torch.testing.assert_close(math, auto, rtol=1e-5, atol=1e-5)
