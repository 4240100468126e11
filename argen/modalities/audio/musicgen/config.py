"""What a MusicGen folder's config.json says, read once into one dataclass.

transformers saves a MusicGen checkpoint as one config.json with three sub-configs (field names
and defaults from ``configuration_musicgen.py`` / ``configuration_musicgen_melody.py``, transformers
5): ``text_encoder`` (T5), ``audio_encoder`` (EnCodec) and ``decoder`` (``musicgen_decoder`` /
``musicgen_melody_decoder``). The two layouts differ in how the decoder is conditioned:

- ``musicgen`` (small, medium, large, stereo-*): cross-attention in every decoder layer to the
  T5 states (``MusicgenDecoderLayer.encoder_attn``);
- ``musicgen_melody``: no cross-attention; the projected chromagram (``chroma_length`` frames of
  ``num_chroma`` bins) and the projected T5 states are placed before the audio tokens
  (``MusicgenMelodyDecoder.forward`` concatenates them to ``inputs_embeds``), attended causally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from argen.engine.config import TransformerConfig
from argen.errors import ArgenError

FAMILIES = ("musicgen", "musicgen_melody")
# published sampling settings: audiocraft's MusicGen.set_generation_params defaults
# (facebookresearch/audiocraft audiocraft/models/musicgen.py: use_sampling=True, top_k=250,
# top_p=0.0, temperature=1.0, cfg_coef=3.0)
DEFAULTS = {"temperature": 1.0, "top_k": 250, "top_p": None, "cfg_scale": 3.0}
# audiocraft MusicGen.get_pretrained builds every released model with max_duration=30; longer
# audio continues window by window, each new window starting extend_stride=18 s after the last
# (set_generation_params default; GenModel._generate_tokens)
MAX_DURATION_S = 30.0
EXTEND_STRIDE_S = 18.0
# decoder activations transformers' ACT2FN maps to argen's MLP kinds ("gelu" is the exact erf form)
_ACTS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def matches(config: dict[str, Any]) -> bool:
    """True for a transformers MusicGen / MusicGen-Melody config.json (as a dict)."""
    return (isinstance(config, dict) and config.get("model_type") in FAMILIES
            and all(isinstance(config.get(k), dict) for k in ("decoder", "audio_encoder")))


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if d.get(key) is None:
        raise ArgenError(f"MusicGen config.json: {where} has no {key!r}",
                         hint="the config.json is incomplete; re-download it from the model's page")
    return d[key]


@dataclass(frozen=True)
class MusicGenSpec:
    """The facts of one checkpoint that argen needs (sizes, codebooks, rates, conditioning)."""

    family: str  # "musicgen" (cross-attention) or "musicgen_melody" (prefix)
    d_model: int
    n_layer: int
    n_head: int
    d_ff: int
    mlp: str
    max_positions: int
    n_codebooks: int  # decoder streams; stereo models interleave left/right: 2 x the codec's
    channels: int  # 1 mono, 2 stereo
    codebook_size: int  # the codec's codes per codebook; the decoder's extra id codebook_size is PAD/BOS
    text_dim: int | None  # T5 width (None: no text encoder config)
    sample_rate: int
    hop: int  # codec samples per frame
    num_chroma: int = 12
    chroma_length: int = 235

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "MusicGenSpec":
        """Read a transformers MusicGen config.json (a dict); a wrong family or an inconsistent
        config is a one-line :class:`ArgenError`."""
        if not matches(cfg):
            raise ArgenError(f"not a MusicGen checkpoint (model_type {cfg.get('model_type')!r})",
                             hint="expected a transformers MusicgenForConditionalGeneration or "
                                  "MusicgenMelodyForConditionalGeneration folder")
        dec, enc = cfg["decoder"], cfg["audio_encoder"]
        text = cfg.get("text_encoder") if isinstance(cfg.get("text_encoder"), dict) else None
        act = dec.get("activation_function", "gelu")
        if act not in _ACTS:
            raise ArgenError(f"MusicGen decoder activation {act!r} is not supported", hint=f"supported: {', '.join(_ACTS)}")
        vocab = int(dec.get("vocab_size", 2048))
        for key in ("pad_token_id", "bos_token_id"):
            if int(dec.get(key, vocab)) != vocab:
                raise ArgenError(f"MusicGen decoder {key} is {dec.get(key)}, expected {vocab} (the extra embedding row)",
                                 hint="the config.json is not a MusicGen decoder's")
        ratios = [int(r) for r in enc.get("upsampling_ratios", [8, 5, 4, 2])]
        spec = cls(
            family=cfg["model_type"], d_model=int(dec.get("hidden_size", 1024)),
            n_layer=int(dec.get("num_hidden_layers", 24)), n_head=int(dec.get("num_attention_heads", 16)),
            d_ff=int(dec.get("ffn_dim", 4096)), mlp=_ACTS[act], max_positions=int(dec.get("max_position_embeddings", 2048)),
            n_codebooks=int(dec.get("num_codebooks", 4)), channels=int(dec.get("audio_channels", 1)),
            codebook_size=vocab, text_dim=None if text is None else int(text.get("d_model", text.get("hidden_size", 512))),
            sample_rate=int(enc.get("sampling_rate", 24000)), hop=math.prod(ratios),
            num_chroma=int(cfg.get("num_chroma", 12)), chroma_length=int(cfg.get("chroma_length", 235)))
        spec._check(enc)
        return spec

    def _check(self, enc: dict[str, Any]) -> None:
        if self.channels not in (1, 2) or self.n_codebooks % self.channels:
            raise ArgenError(f"MusicGen decoder: {self.n_codebooks} codebooks for {self.channels} channel(s)",
                             hint="audio_channels must be 1 or 2 and divide num_codebooks")
        if int(enc.get("codebook_size", 1024)) != self.codebook_size:
            raise ArgenError(f"the EnCodec codebook size ({enc.get('codebook_size')}) differs from the decoder's "
                             f"vocabulary ({self.codebook_size})", hint="the config.json mixes two models")
        if enc.get("audio_channels", 1) != 1:
            raise ArgenError("MusicGen's EnCodec must be mono (stereo models code each channel alone)",
                             hint="the config.json is not a MusicGen checkpoint's")
        if enc.get("normalize"):
            raise ArgenError("an EnCodec with normalize=true is not MusicGen's 32 kHz codec",
                             hint="MusicGen's codec codes unnormalised audio")
        if self.d_model % self.n_head:
            raise ArgenError(f"MusicGen decoder: hidden_size {self.d_model} is not a multiple of {self.n_head} heads",
                             hint="the config.json is corrupt")

    @property
    def melody(self) -> bool:
        return self.family == "musicgen_melody"

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def pad(self) -> int:
        return self.codebook_size

    @property
    def stream_vocab(self) -> int:
        return self.codebook_size + 1  # the codes and PAD/BOS, in every stream's embedding

    def delays(self) -> list[int]:
        """Each stream's delay in frames: codebook q waits q steps (audiocraft's
        DelayedPatternProvider, delays [0, 1, 2, 3]); stereo streams come as left/right pairs of
        the same codebook with the same delay (transformers' ``build_delay_pattern_mask``:
        rows 2q and 2q + 1 share delay q)."""
        return [q // self.channels for q in range(self.n_codebooks)]

    @property
    def max_frames(self) -> int:
        return int(MAX_DURATION_S * self.frame_rate)

    @property
    def stride_frames(self) -> int:
        return int(EXTEND_STRIDE_S * self.frame_rate)

    def transformer_config(self) -> TransformerConfig:
        """The engine config of the decoder: pre-norm LayerNorm blocks without linear biases,
        sinusoidal positions, one summed embedding and one head per codebook (``n_streams``),
        cross-attention for the text layout (transformers' ``MusicgenDecoderLayer``: bias=False
        on every projection and fc1/fc2, ``nn.LayerNorm`` defaults, eps 1e-5)."""
        return TransformerConfig(
            vocab_size=self.n_codebooks * self.stream_vocab, n_layer=self.n_layer, n_head=self.n_head,
            d_model=self.d_model, d_ff=self.d_ff, max_seq_len=self.max_positions, pos_emb="sinusoidal",
            norm="layernorm", norm_eps=1e-5, norm_bias=True, mlp=self.mlp, n_streams=self.n_codebooks,
            cross_attn=not self.melody, extra={"hf_model_type": self.family})
