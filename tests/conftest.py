"""Shared fixtures: tiny models built in code (no downloads), and an in-process CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.modalities.text.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
torch.set_num_threads(min(2, os.cpu_count() or 1))


def tiny_model(seed: int = 0, vocab: int = 50, sharp: float = 1.0, **kw) -> Transformer:
    """A random model; ``sharp`` scales the output head so its distributions are peaked."""
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab, n_layer=2, d_model=32, n_head=4, n_kv_head=2, max_seq_len=128)
    cfg.update(kw)
    m = Transformer(TransformerConfig(**cfg)).eval()
    if sharp != 1.0:
        with torch.no_grad():
            m.lm_head.weight.normal_(0, 0.02 * sharp)
    return m


@pytest.fixture(scope="session")
def char_model_dir(tmp_path_factory) -> Path:
    """An argen text model folder (random weights, a character vocabulary)."""
    out = tmp_path_factory.mktemp("charmodel") / "tiny-char"
    tok = CharTokenizer("\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    model = tiny_model(vocab=tok.vocab_size, sharp=40.0, max_seq_len=64)
    save_model_dir(out, model, "text", {"name": "tiny-char", "tokenizer": "tokenizer.json"})
    tok.save(out / "tokenizer.json")
    return out


@pytest.fixture
def cli(capsys):
    """Run ``argen ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from argen.cli.app import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def tiny_image_model(out: Path, scales: list[int], seed: int = 0, sharp: float = 1.0, features: bool = False,
                     raster_scales: int = 0) -> Path:
    """An argen image model folder (random weights): a tiny tokenizer and a tiny transformer
    (``features``: next-scale inputs are the tokenizer's running feature map, VAR's;
    ``raster_scales``: that many coarse scales are sampled token by token)."""
    from argen.lab.data.shapes import VOCABULARY
    from argen.modalities.image.layout import ImageLayout
    from argen.modalities.image.vq import ImageTokenizer, VQConfig, save_tokenizer_dir

    torch.manual_seed(seed)
    tok = ImageTokenizer(VQConfig(width=8, latent_dim=8, codebook_size=32, scales=scales)).eval()
    layout = ImageLayout(words=list(VOCABULARY), codebook_size=32, scales=scales, dataset="shapes",
                         feature_dim=8 if features else 0, raster_scales=raster_scales)
    model = Transformer(TransformerConfig(**layout.transformer_fields(), n_layer=2, d_model=32, n_head=4,
                                          pos_emb="learned")).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.02 * sharp)
    save_tokenizer_dir(out / "tokenizer", tok)
    save_model_dir(out, model, "image", {"name": out.name, "image": layout.to_dict(), "tokenizer": "tokenizer"})
    return out


@pytest.fixture(scope="session")
def image_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Tiny image model folders by sampler: {"next-scale": path, "next-token": path,
    "next-scale-features": path (VAR's feature inputs), "next-scale-raster": path (scales 1 and 2
    token by token)}."""
    root = tmp_path_factory.mktemp("imagemodels")
    return {"next-scale": tiny_image_model(root / "tiny-next-scale", [1, 2, 4, 8], sharp=20.0),
            "next-token": tiny_image_model(root / "tiny-next-token", [8], sharp=20.0),
            "next-scale-features": tiny_image_model(root / "tiny-next-scale-features", [1, 2, 4, 8, 8], sharp=20.0,
                                                    features=True),
            "next-scale-raster": tiny_image_model(root / "tiny-next-scale-raster", [1, 2, 4, 8], sharp=20.0,
                                                  raster_scales=2)}
