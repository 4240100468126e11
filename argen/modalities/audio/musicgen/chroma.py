"""The melody condition of MusicGen-Melody: a one-hot chromagram of the tune.

As audiocraft's ``ChromaExtractor`` (``audiocraft/modules/chroma.py``: power spectrogram with
n_fft = 2**14, a hop of n_fft / 4, librosa's chroma filters, max-normalised, argmax one-hot) and
transformers' ``MusicgenMelodyFeatureExtractor._torch_extract_fbank_features`` (the same, with
torchaudio's ``Spectrogram(power=2, center=True, normalized=True)``), written with ``torch.stft``
so that torchaudio is not needed: torchaudio's "normalized" divides the STFT by the window's
L2 norm, so the power is divided by ``sum(window**2)``. Clips shorter than one FFT window are
zero-padded on both sides to it. The tune is used as given (mono mix, the model's rate, at most
``max_seconds``); audiocraft first removes drums and bass with Demucs, which argen does not run.
"""

from __future__ import annotations

import numpy as np
import torch

N_FFT = 2**14
HOP = N_FFT // 4


def chroma_filters(sample_rate: int, num_chroma: int) -> torch.Tensor:
    """(num_chroma, N_FFT // 2 + 1) librosa-style chroma filters (transformers'
    ``audio_utils.chroma_filter_bank`` with tuning 0, as the feature extractor builds them)."""
    from transformers.audio_utils import chroma_filter_bank

    return torch.from_numpy(chroma_filter_bank(num_frequency_bins=N_FFT, num_chroma=num_chroma,
                                               sampling_rate=sample_rate, tuning=0)).float()


def chromagram(audio: np.ndarray, sample_rate: int, num_chroma: int = 12, max_seconds: float = 30.0) -> torch.Tensor:
    """Samples (T,) or (C, T) at ``sample_rate`` -> one-hot chroma (frames, num_chroma) float32,
    one frame per HOP samples (the strongest pitch class of each frame)."""
    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if wav.dim() == 2:
        wav = wav.mean(0)  # mono mix, as the feature extractor does for stereo input
    wav = wav[: int(max_seconds * sample_rate)]
    if wav.shape[0] < N_FFT:
        pad = N_FFT - wav.shape[0]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad - pad // 2))
    window = torch.hann_window(N_FFT)
    spec = torch.stft(wav, N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=True,
                      pad_mode="reflect", return_complex=True)  # (N_FFT / 2 + 1, frames)
    power = spec.abs().pow(2) / window.pow(2).sum()
    raw = chroma_filters(sample_rate, num_chroma) @ power  # (num_chroma, frames)
    norm = raw / raw.abs().amax(dim=0, keepdim=True).clamp(min=1e-6)
    return torch.nn.functional.one_hot(norm.argmax(0), num_chroma).float()  # (frames, num_chroma)
