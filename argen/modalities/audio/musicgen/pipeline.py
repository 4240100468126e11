"""`argen audio --model musicgen-small`: the MusicGen family behind the audio modality's contract.

Rows become one :meth:`MusicGen.generate` call per batch (each row its own seed, so a row's audio
is the same alone or in a batch); ``--extend`` gives the clip whose EnCodec codes prompt the
decoder (audiocraft's ``generate_continuation``), ``--melody`` the tune of a melody model. The
sampling defaults are the published ones (:data:`~.config.DEFAULTS`: top-k 250, temperature 1,
guidance 3, audiocraft's ``MusicGen.set_generation_params``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.sampling.processors import SamplingConfig
from argen.errors import UsageError
from argen.io.metadata import build_metadata
from argen.modalities.audio.musicgen.config import DEFAULTS, matches
from argen.modalities.audio.pipeline import AudioOutput
from argen.modalities.audio.spec import AudioSpec
from argen.modalities.base import OnProgress, Pipeline, Row, load_pretrained, quantize_record

DEFAULT_SECONDS = 8.0  # new audio when --seconds is not given (a short, quick first try)


class MusicGenPipeline(Pipeline):
    """``argen.load("musicgen-small")("lo-fi beat", seconds=8, seed=0)`` -> [AudioOutput]."""

    modality = "audio"
    default_batch_size = 4  # rows share every decoding step (and their guidance twins)

    def __init__(self, model, ref: weights.ModelRef | None = None) -> None:
        self.model, self.ref = model, ref
        self._clip: np.ndarray | None = None
        self._clip_name: str | None = None
        self._melody: np.ndarray | None = None

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        return config is not None and matches(config)

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "MusicGenPipeline":
        from argen.modalities.audio.musicgen.model import MusicGen

        pipe = cls(load_pretrained(MusicGen, ref, device, dtype, options, "audio", "MusicGen"), ref)
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The published settings (top-k 250, temperature 1, guidance 3) with ``overrides``."""
        return SamplingConfig(**{**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}})

    def check(self, spec: AudioSpec) -> None:
        from argen.io.audio import read_audio

        m = self.model
        if spec.only_new and spec.extend is None:
            raise UsageError("--only-new goes with --extend", hint="drop --only-new, or give a clip to --extend")
        if spec.melody is not None and not m.has_melody:
            raise UsageError(f"{self.name} has no melody conditioning", hint="use a melody model, e.g. musicgen-melody")
        self._clip = None if spec.extend is None else read_audio(spec.extend, m.sample_rate, m.channels)
        self._clip_name = None if spec.extend is None else Path(spec.extend).name
        self._melody = None if spec.melody is None else read_audio(spec.melody, m.sample_rate)

    def check_prompt(self, prompt: str | None) -> str | None:
        if prompt is not None and not self.model.has_text_encoder:
            raise UsageError(f"{self.name} has no text encoder, so it takes no prompt",
                             hint="leave --prompt out (unconditional generation)")
        return prompt

    @torch.inference_mode()
    def generate_batch(self, spec: AudioSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[AudioOutput]:
        t0 = time.perf_counter()
        m, clip = self.model, self._clip
        seconds = spec.seconds if spec.seconds is not None else DEFAULT_SECONDS
        progress = None if on_progress is None else (lambda done, total: on_progress(done, total, "steps"))
        waves = m.generate([r.prompt for r in rows], [r.seed for r in rows], seconds, sampling,
                           audio_prompt=clip, melody=self._melody, on_progress=progress, use_cache=self.use_cache,
                           compile=self.compile)
        per = (time.perf_counter() - t0) / len(rows)
        outputs = []
        for row, wave in zip(rows, waves):  # wave: (C, T)
            if clip is not None:  # the clip's own samples, not the codec's rendering of them
                new = wave[:, m.new_audio_offset(clip.shape[-1]):]
                kept = clip if clip.ndim == 2 else np.broadcast_to(clip, (m.channels, clip.shape[-1]))
                wave = new if spec.only_new else np.concatenate([kept, new], axis=1)
            samples = np.ascontiguousarray(wave[0] if m.channels == 1 else wave, dtype=np.float32)
            meta = build_metadata(
                modality="audio", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                prompt=row.prompt, extend=self._clip_name, melody=None if spec.melody is None else Path(spec.melody).name,
                seed=row.seed, sample_rate=m.sample_rate, channels=m.channels,
                duration=round(samples.shape[-1] / m.sample_rate, 4), cfg=sampling.cfg_scale,
                temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                only_new=spec.only_new or None, dtype=str(m.decoder.embed.weight.dtype).removeprefix("torch."),
                quantize=quantize_record(m.quantize))
            outputs.append(AudioOutput(row.index, row.seed, row.prompt, per, meta, samples=samples,
                                       sample_rate=m.sample_rate))
        return outputs

    def summary(self, outputs: list) -> str:
        if not outputs:
            return "no audio"
        audio = sum(o.samples.shape[-1] / o.sample_rate for o in outputs)
        compute = sum(o.seconds for o in outputs)
        return f"{audio:.2f} s of audio in {compute:.2f} s ({audio / max(compute, 1e-9):.2f}x real time, {self.name})"
