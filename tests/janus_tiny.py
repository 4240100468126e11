"""A tiny random Janus checkpoint in transformers' layout, for the Janus tests and the benchmark:
``JanusForConditionalGeneration`` with seeded weights (larger than its init, so greedy tokens
vary), saved by ``save_pretrained`` beside a character-level tokenizer.json (BOS added by its
post-processor, as the real tokenizer does) and a generation_config.json naming the BOS, pad and
image-start ids (transformers' ``generate(generation_mode="image")`` reads them there)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

CHARS = " \n<|>:,.UA" + "abcdefghijklmnopqrstuvwxyz"
BOS, PAD, BOI = "<｜begin▁of▁sentence｜>", "<｜▁pad▁｜>", "<begin_of_image>"


def make_tokenizer():
    """A character-level BPE (no merges): one id per character, then BOS, pad, image start."""
    from tokenizers import Tokenizer, models, processors

    vocab = {c: i for i, c in enumerate(CHARS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.add_special_tokens([BOS, PAD, BOI])
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos)])
    return tok


def janus_config(text_vocab: int = 64, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                 inter: int = 48, grid: int = 4, codebook: int = 40, max_pos: int = 128, vq_ch: int = 32,
                 vq_mult=(1, 2), vq_blocks: int = 1, vq_latent: int = 32):
    from transformers import JanusConfig

    tok = make_tokenizer()
    return JanusConfig(
        text_config=dict(model_type="llama", vocab_size=text_vocab, hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=max_pos, bos_token_id=tok.token_to_id(BOS),
                         pad_token_id=tok.token_to_id(PAD), eos_token_id=0),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16 * grid,
                           patch_size=16, projection_dim=hidden, num_image_tokens=grid * grid),
        vq_config=dict(embed_dim=8, num_embeddings=codebook, base_channels=vq_ch, channel_multiplier=list(vq_mult),
                       num_res_blocks=vq_blocks, latent_channels=vq_latent, projection_dim=hidden,
                       image_token_embed_dim=hidden),
    )


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Seeded weights in parameter order: matrices ~ N(0, 1/fan_in) * 1.5, embeddings N(0, 1),
    norm scales 1 + N(0, 0.1), biases N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        if p.dim() == 1:
            p.copy_(1 + 0.1 * noise if ("norm" in name and name.endswith("weight")) else 0.1 * noise)
        elif "embed" in name:
            p.copy_(noise)
        else:
            p.copy_(noise * 1.5 / math.sqrt(p[0].numel()))


def save_tiny_janus(out: Path, seed: int = 0, **kw):
    """Write the checkpoint folder; returns the transformers model (eval)."""
    from transformers import GenerationConfig, JanusForConditionalGeneration

    cfg = janus_config(**kw)
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(cfg).eval()
    randomise(model, seed)
    model.save_pretrained(out)
    tok = make_tokenizer()
    tok.save(str(Path(out) / "tokenizer.json"))
    GenerationConfig(bos_token_id=tok.token_to_id(BOS), pad_token_id=tok.token_to_id(PAD), eos_token_id=0,
                     generation_kwargs={"boi_token_id": tok.token_to_id(BOI)}).save_pretrained(out)
    return model
