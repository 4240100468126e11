"""Tiny random models in the official layouts, built with diffusers and transformers and saved with
``save_pretrained`` (for tests and benchmarks; audiocraft's ``get_pretrained('debug')`` habit).

:func:`build_tiny` writes a diffusers pipeline folder: a ``SkyReelsV2Transformer3DModel`` (or a
``WanTransformer3DModel``), an ``AutoencoderKLWan`` of the shape diffusers' own SkyReels-V2 tests
use (base_dim 3, z_dim 16, temporal downsampling [False, True, True]), a small
``UMT5EncoderModel`` with a word-level ``T5Tokenizer``, and a ``UniPCMultistepScheduler`` set up
for flow matching (``prediction_type="flow_prediction"``, ``use_flow_sigmas``, ``flow_shift`` 8).
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("a red fox runs through snow over the hill dance monkey cat dog lake sun sky blue green slow fast camera pans "
         "left right bird water tree").split()


def tiny_tokenizer():
    """A T5 tokenizer over :data:`WORDS` (Unigram pieces; pad 0, eos 1, unk 2, as T5's)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    vocab += [(f"▁{w}", -1.0) for w in WORDS]
    vocab += [(ch, -5.0) for ch in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny(folder: str | Path, kind: str = "df", seed: int = 0, heads: int = 2, head_dim: int = 12,
               layers: int = 2, ffn: int = 32, text_dim: int = 32, inject_sample_info: bool = True,
               flow_shift: float = 8.0):
    """Save a tiny random pipeline to ``folder``: ``kind`` "df" (SkyReels-V2 diffusion forcing,
    video-to-video pipeline) or "wan" (Wan2.1 text-to-video). Returns the folder and the diffusers
    pipeline object (the same weights; loading it back needs accelerate, which argen does not)."""
    from diffusers import (
        AutoencoderKLWan,
        SkyReelsV2DiffusionForcingVideoToVideoPipeline,
        SkyReelsV2Transformer3DModel,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    enc = UMT5EncoderModel(UMT5Config(vocab_size=len(tok), d_model=text_dim, d_kv=8, d_ff=48, num_layers=2,
                                      num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0)).eval()
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()
    torch.manual_seed(seed + 2)
    shape = {"patch_size": (1, 2, 2), "num_attention_heads": heads, "attention_head_dim": head_dim, "in_channels": 16,
                 "out_channels": 16, "text_dim": text_dim, "freq_dim": 256, "ffn_dim": ffn, "num_layers": layers,
                 "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 64}
    if kind == "df":
        transformer = SkyReelsV2Transformer3DModel(inject_sample_info=inject_sample_info, **shape)
    elif kind == "wan":
        transformer = WanTransformer3DModel(**shape)
    else:
        raise ValueError(f"kind must be 'df' or 'wan', not {kind!r}")
    with torch.no_grad():  # the tables start as randn / sqrt(d); make the rest of the head non-trivial too
        for p in transformer.parameters():
            if p.dim() == 1 and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift)
    cls = SkyReelsV2DiffusionForcingVideoToVideoPipeline if kind == "df" else WanPipeline
    pipe = cls(tokenizer=tok, text_encoder=enc, transformer=transformer.eval(), vae=vae, scheduler=sched)
    pipe.save_pretrained(str(folder))
    return folder, pipe
