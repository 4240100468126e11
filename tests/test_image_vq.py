"""Image tokenizers (groundwork for `argen image`): round trips, token layout, residual scales."""

import numpy as np
import pytest
import torch

from argen.lab.data.shapes import sample
from argen.modalities.image.vq import ImageTokenizer, VQConfig


def images(n=4):
    arr = np.stack([np.asarray(sample(0, i)[1]) for i in range(n)])
    return torch.tensor(arr).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, 64, 64) in [-1, 1]


@pytest.mark.parametrize("scales, length", [([8], 64), ([1, 2, 4, 8], 85), ([1, 2, 3, 4, 6, 8], 130)])
def test_token_layout_and_round_trip(scales, length):
    torch.manual_seed(0)
    tok = ImageTokenizer(VQConfig(width=32, scales=scales)).eval()
    x = images()
    ids = tok.encode(x)
    assert ids.shape == (4, length) and ids.dtype == torch.long
    assert ids.min() >= 0 and ids.max() < tok.cfg.codebook_size
    grids = tok.split(ids)
    assert [g.shape[-1] for g in grids] == scales
    assert torch.equal(torch.cat([g.flatten(1) for g in grids], 1), ids)
    out = tok.decode(ids)
    assert out.shape == (4, 3, 64, 64) and out.abs().max() <= 1
    # decoding the tokens gives exactly what the straight-through forward reconstructs
    with torch.no_grad():
        recon, _ = tok(x)
    assert torch.allclose(out, recon.clamp(-1, 1), atol=1e-5)


def test_lookup_is_the_nearest_code():
    torch.manual_seed(0)
    cfg = VQConfig(width=32, scales=[8], codebook_size=256, phi_ratio=0.0)
    tok = ImageTokenizer(cfg).eval()
    with torch.no_grad():
        f = tok.encoder(images(4))  # (4, C, 8, 8): 256 feature vectors
        vectors = f.permute(0, 2, 3, 1).reshape(-1, cfg.latent_dim)
        tok.quantizer.codebook.weight.copy_(vectors.flip(0))  # every feature is a code
        f_hat, idx = tok.quantizer.quantize(f)
    assert torch.allclose(f_hat, f, atol=1e-5)
    assert torch.equal(idx[0].flatten(), 255 - torch.arange(256).view(4, 64).flatten())


def test_training_step_reaches_the_encoder():
    torch.manual_seed(0)
    tok = ImageTokenizer(VQConfig(width=32, scales=[1, 2, 4, 8]))
    recon, vq_loss = tok(images(2))
    (torch.nn.functional.mse_loss(recon, images(2)) + vq_loss).backward()
    assert tok.encoder.net[1].weight.grad.abs().sum() > 0
    assert tok.quantizer.codebook.weight.grad.abs().sum() > 0


def test_scales_must_end_at_the_latent_grid():
    with pytest.raises(ValueError, match="latent grid"):
        VQConfig(scales=[1, 2, 4])


def test_patchified_tokenizer_keeps_the_layout():
    torch.manual_seed(0)
    tok = ImageTokenizer(VQConfig(width=16, patch=2, downsample=2, scales=[1, 2, 4, 8])).eval()
    ids = tok.encode(images(2))
    assert ids.shape == (2, 85)
    assert tok.decode(ids).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="latent grid size 16"):
        VQConfig(patch=2, downsample=1, scales=[8])


def test_ema_codebook_follows_its_features_and_dead_codes_restart():
    torch.manual_seed(0)
    cfg = VQConfig(width=16, latent_dim=8, codebook_size=64, scales=[8], ema_decay=0.5, phi_ratio=0.0)
    q = ImageTokenizer(cfg).quantizer.train()
    assert not q.codebook.weight.requires_grad
    f = torch.randn(4, 8, 8, 8)
    before = q.codebook.weight.clone()
    _, (idx,) = q.quantize(f)
    used = idx.unique()
    flat = f.permute(0, 2, 3, 1).reshape(-1, 8)
    for code in used[:5].tolist():
        mean = flat[idx.flatten() == code].mean(0)
        # a used code moves towards the mean of its features (decay 0.5: about halfway)
        assert (q.codebook.weight[code] - mean).norm() < (before[code] - mean).norm()
    moved = q.restart_dead_codes()
    assert moved == 64 - len(used)
    dead = [c for c in range(64) if c not in set(used.tolist())]
    # every restarted code now sits exactly on one of the recent features
    d = (q.codebook.weight[dead][:, None] - flat[None]).norm(dim=-1)  # exact, unlike cdist's matmul form
    assert torch.allclose(d.min(1).values, torch.zeros(len(dead)), atol=1e-5)
    assert q.usage.sum() == 0
