"""The parts of a MusicGen checkpoint that run through transformers: the T5 text encoder (once
per prompt) and the EnCodec 32 kHz codec (encoding audio prompts, decoding the output).

Both are rebuilt from their sub-config in config.json and loaded from the checkpoint's own
tensors (``text_encoder.*``, ``audio_encoder.*``), never downloaded. transformers is imported
only when a model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from argen.errors import ArgenError


def need_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ArgenError("MusicGen needs the transformers package (its T5 text encoder and EnCodec codec)",
                         hint="pip install 'argen[musicgen]'") from None


def load_submodel(sub_config: dict[str, Any], state: dict[str, torch.Tensor], what: str, text: bool) -> nn.Module:
    """A transformers model built from ``sub_config`` (a config.json sub-dict with its
    ``model_type``) and loaded strictly from ``state`` (tied copies may be absent)."""
    need_transformers()
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding

    cfg = dict(sub_config)
    try:
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        model = (AutoModelForTextEncoding if text else AutoModel).from_config(config)
    except (KeyError, ValueError, TypeError) as e:
        raise ArgenError(f"cannot build the MusicGen {what} from config.json ({e})",
                         hint="the config.json is corrupt or from another model") from None
    result = model.load_state_dict(state, strict=False)
    tied = {k for k in result.missing_keys if k.endswith("embed_tokens.weight")}  # T5's copy of `shared`
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise ArgenError(f"the {what} weights do not match its config (missing {missing[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]})", hint="the checkpoint is incomplete or corrupt")
    if tied:
        model.tie_weights()
    return model.eval()


class TextEncoder:
    """Prompts -> T5 states projected to the decoder's width: one (L, d_model) tensor per prompt.

    Each prompt is encoded alone (no padding), so its states do not depend on the batch it came
    in. The projection is ``enc_to_dec_proj`` (present when the widths differ).
    """

    def __init__(self, tokenizer: Any, t5: nn.Module, proj: nn.Linear | None) -> None:
        self.tokenizer, self.t5, self.proj = tokenizer, t5, proj

    @classmethod
    def load(cls, folder: Path, sub_config: dict[str, Any], state: dict[str, torch.Tensor],
             proj: nn.Linear | None) -> "TextEncoder | None":
        """None when the folder has no text encoder weights or no tokenizer files."""
        if not state or not any((folder / n).is_file() for n in ("tokenizer.json", "spiece.model")):
            return None
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            raise ArgenError(f"cannot read the tokenizer in {folder} ({e})", hint="restore the tokenizer files") from None
        return cls(tokenizer, load_submodel(sub_config, state, "text encoder", text=True), proj)

    @torch.inference_mode()
    def encode(self, prompt: str) -> torch.Tensor:
        """One prompt -> (L, d_model) float32 states (T5's last hidden state, projected)."""
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]  # (1, L)
        ids = ids.to(next(self.t5.parameters()).device)
        states = self.t5(input_ids=ids).last_hidden_state  # (1, L, d_text)
        if self.proj is not None:
            states = self.proj(states)
        return states[0].float()


class Codec:
    """EnCodec (transformers' ``EncodecModel``) for MusicGen: mono codes, or for stereo models
    each channel coded alone with the streams interleaved left, right per codebook (transformers'
    ``_prepare_audio_encoder_kwargs_for_generation`` and its stereo decode in ``generate``)."""

    def __init__(self, model: nn.Module, channels: int, n_codebooks: int) -> None:
        self.model, self.channels, self.n_codebooks = model, channels, n_codebooks

    @torch.inference_mode()
    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Samples (C, T) at the codec's rate (a mono clip for a stereo model is used on both
        sides) -> codes (n_codebooks, F)."""
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(self.device)
        if wav.shape[0] != self.channels:
            wav = wav.mean(0, keepdim=True).expand(self.channels, -1)  # mono <-> stereo, as audiocraft's convert_audio
        per = []
        for c in range(self.channels):
            out = self.model.encode(wav[c][None, None])  # audio_codes (1, 1, K, F)
            if out.audio_scales != [None] and out.audio_scales[0] is not None:
                raise ArgenError("the codec returned scales (normalize=true)", hint="not MusicGen's codec")
            per.append(out.audio_codes[0, 0])
        codes = torch.stack(per, dim=1).reshape(-1, per[0].shape[-1])  # (K * C, F): left/right per codebook
        if codes.shape[0] != self.n_codebooks:
            raise ArgenError(f"the codec gives {codes.shape[0]} codebooks, the decoder expects {self.n_codebooks}",
                             hint="the audio_encoder config does not match the decoder")
        return codes

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n_codebooks, F) -> samples (B, C, F * hop) float32."""
        codes = codes.to(self.device)
        # one row at a time: batched convolutions round differently, and a sample's audio must not
        # depend on the batch it was made in
        rows = [torch.cat([self.model.decode(codes[None, b:b + 1, c::self.channels], [None]).audio_values  # (1, 1, T)
                           for c in range(self.channels)], dim=1) for b in range(codes.shape[0])]
        return torch.cat(rows).float().cpu()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
