"""Tiny random MusicGen checkpoints in the official layout, built with transformers and written
by ``save_pretrained`` (with a word-level tokenizer), for the MusicGen tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORDS = ["lo-fi", "beat", "with", "piano", "jazz", "drums", "calm", "strings", "loud", "guitar", "slow", "synth"]
CODEBOOK = 64  # codes per codebook (the decoder's vocab_size; 64 is PAD/BOS)
RATE, HOP = 1600, 32  # 50 frames a second, as the 32 kHz codec (hop 640)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models are tiny: a second thread only adds synchronisation (and stalls on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def save_tokenizer(folder: Path) -> None:
    """A T5-like tokenizer: words to ids, ``</s>`` appended (as T5's tokenizer does)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(str(folder))


def build(kind: str = "mono", seed: int = 0, d_model: int = 32, layers: int = 2, spread: float = 0.08):
    """A random transformers MusicGen model: ``kind`` is "mono", "stereo" or "melody". Decoder
    weights are drawn wider than transformers' init (``spread``) so that its distributions are
    peaked and greedy streams vary."""
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    torch.manual_seed(seed)
    t5 = T5Config(vocab_size=3 + len(WORDS), d_model=24, d_ff=32, num_layers=2, num_heads=2, d_kv=12,
                  feed_forward_proj="relu", decoder_start_token_id=0)
    # num_quantizers = 1000 * 1.2 // (50 frames/s * 6 bits) = 4 codebooks, as the real codec's 2.2 kbps
    codec = EncodecConfig(sampling_rate=RATE, upsampling_ratios=[4, 8], codebook_size=CODEBOOK, hidden_size=16,
                          num_filters=4, num_lstm_layers=1, target_bandwidths=[1.2], kernel_size=3, last_kernel_size=3,
                          use_conv_shortcut=False, use_causal_conv=False, normalize=False)
    channels = 2 if kind == "stereo" else 1
    dec = dict(vocab_size=CODEBOOK, hidden_size=d_model, num_hidden_layers=layers, num_attention_heads=4,
               ffn_dim=48, num_codebooks=4 * channels, audio_channels=channels, pad_token_id=CODEBOOK,
               bos_token_id=CODEBOOK, decoder_start_token_id=CODEBOOK, max_position_embeddings=512)
    if kind == "melody":
        cfg = MusicgenMelodyConfig(text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(),
                                   decoder=MusicgenMelodyDecoderConfig(**dec).to_dict(), chroma_length=20)
        model = MusicgenMelodyForConditionalGeneration(cfg)
    else:
        cfg = MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(),
                             decoder=MusicgenDecoderConfig(**dec).to_dict())
        model = MusicgenForConditionalGeneration(cfg)
    with torch.no_grad():
        for p in model.decoder.parameters():
            if p.dim() == 2:
                p.normal_(0, spread)
        for name in ("enc_to_dec_proj", "audio_enc_to_dec_proj"):
            if hasattr(model, name):
                getattr(model, name).weight.normal_(0, spread)
    gen = model.generation_config
    gen.decoder_start_token_id = gen.pad_token_id = gen.bos_token_id = CODEBOOK
    return model.eval()


def save(model, folder: Path) -> Path:
    model.save_pretrained(str(folder))
    save_tokenizer(folder)
    return folder


def text_inputs(folder: Path, prompts: list[str]) -> dict:
    from transformers import AutoTokenizer

    return dict(AutoTokenizer.from_pretrained(str(folder))(prompts, return_tensors="pt", padding=True))
