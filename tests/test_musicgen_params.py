"""musicgen-small's and musicgen-melody's architectures, built on the meta device from their
configs and converted to argen's key set, add up to the published parameter counts.

Sizes: audiocraft's ``config/model/lm/model_scale/small.yaml`` (dim 1024, 16 heads, 24 layers)
and ``medium.yaml`` (1536, 24, 48; the melody model's scale), ``hidden_scale: 4`` and
``n_q: 4, card: 2048`` (``config/model/lm/default.yaml``, ``musicgen_lm.yaml``); text encoder
t5-base (``config/conditioner/text2music.yaml``); EnCodec ``encodec_large_nq4_s640.yaml`` over
``encodec/default.yaml`` (dimension 128, 64 filters, ratios 8 5 4 4, 2 LSTM layers, true_skip,
4 x 2048 codes). Published counts: the Hub's safetensors totals, 591M (facebook/musicgen-small)
and 1.56B (facebook/musicgen-melody); those 2023 files also store the decoder's sinusoidal
table, a frozen ``nn.Parameter`` in transformers' MusicGen then (a non-persistent buffer now).
The paper (Copet et al. 2023, arXiv 2306.05284) calls the small language model "300M".
"""

import pytest
import torch

from argen.engine.transformer import Transformer
from argen.modalities.audio.musicgen.config import MusicGenSpec
from argen.modalities.audio.musicgen.convert import convert_decoder, split_state

T5_BASE = dict(model_type="t5", d_model=768, d_ff=3072, num_layers=12, num_heads=12, d_kv=64, vocab_size=32128,
               feed_forward_proj="relu")
ENCODEC_32K = dict(model_type="encodec", sampling_rate=32000, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
                   codebook_size=2048, hidden_size=128, target_bandwidths=[2.2], use_conv_shortcut=False,
                   use_causal_conv=False, compress=2, num_lstm_layers=2, normalize=False)
SMALL = dict(hidden_size=1024, num_attention_heads=16, num_hidden_layers=24, ffn_dim=4096)
MEDIUM = dict(hidden_size=1536, num_attention_heads=24, num_hidden_layers=48, ffn_dim=6144)


def meta_checkpoint(family: str, scale: dict) -> tuple[dict, dict[str, torch.Size]]:
    """(config.json as a dict, the saved tensors' shapes) of the architecture, weights never made."""
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration, MusicgenMelodyConfig, MusicgenMelodyForConditionalGeneration

    melody = family == "musicgen_melody"
    dec = dict(model_type=f"{family}_decoder", vocab_size=2048, num_codebooks=4, **scale)
    cfg_cls, model_cls = ((MusicgenMelodyConfig, MusicgenMelodyForConditionalGeneration) if melody
                          else (MusicgenConfig, MusicgenForConditionalGeneration))
    config = cfg_cls(text_encoder=T5_BASE, audio_encoder=ENCODEC_32K, decoder=dec)
    with torch.device("meta"):
        model = model_cls(config)
    # tied tensors are stored once (T5's encoder.embed_tokens is its `shared`)
    state = {k: v for k, v in model.state_dict().items() if k != "text_encoder.encoder.embed_tokens.weight"}
    return config.to_dict(), state


@pytest.mark.parametrize("family, scale, published", [("musicgen", SMALL, 591e6), ("musicgen_melody", MEDIUM, 1.56e9)])
def test_converted_key_sets_and_shapes_add_up_to_the_published_counts(family, scale, published):
    config, state = meta_checkpoint(family, scale)
    spec = MusicGenSpec.from_config(config)
    parts = split_state(state)
    ours = convert_decoder(parts["decoder"], spec)
    with torch.device("meta"):
        engine = Transformer(spec.transformer_config())
    expected = {k: v.shape for k, v in engine.state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == expected  # the same keys, each at its shape
    head_pad_rows = spec.n_codebooks * spec.d_model  # argen's zero PAD row in each codebook's head
    decoder = sum(v.numel() for v in ours.values()) - head_pad_rows
    assert decoder == sum(v.numel() for v in parts["decoder"].values())
    assert engine.cfg.num_params() == sum(v.numel() for v in ours.values())
    rest = sum(v.numel() for name, part in parts.items() if name != "decoder" for v in part.values())
    stored_positions = spec.max_positions * spec.d_model  # the 2023 files' sinusoidal table
    total = decoder + rest + stored_positions
    digits = 1e6 if published < 1e9 else 1e7  # as published: 591M, 1.56B
    assert round(total / digits) == round(published / digits), total
    if family == "musicgen":  # the paper's "300M": self-attention and MLP of the 24 blocks
        blocks = spec.n_layer * (4 * spec.d_model**2 + 2 * spec.d_model * spec.d_ff)
        assert round(blocks / 1e8) == 3
