"""Audio generation and continuation: prompt -> conditioning ids; clip -> codec codes -> the
delay pattern's first steps; the engine's next-token loop samples one token per codebook per
step (KV cache, CFG, the delay pattern's fixed slots forced) -> codes -> the codec's decoder ->
16 kHz samples (the clip's own samples kept bit-exact at the start) (+ metadata)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.audio import melody_grammar as melodies
from argen.modalities.audio.codec import AudioCodec, load_codec_dir
from argen.modalities.audio.layout import AudioLayout
from argen.modalities.audio.spec import AudioSpec
from argen.modalities.base import OnProgress, Output, Pipeline, Row, load_argen_transformer, refuse_options

EXTEND_ONLY_SECONDS = 4.0  # new audio after a clip when no prompt says how long the melody is


def new_seconds(prompt: str | None, clip: np.ndarray | None, seconds: float | None) -> float:
    """Seconds of new audio: as asked, else what the prompted melody has not played yet."""
    if seconds is not None:
        return seconds
    clip_s = 0.0 if clip is None else len(clip) / melodies.SAMPLE_RATE
    if prompt is None:
        return EXTEND_ONLY_SECONDS
    melody = melodies.parse_prompt(prompt)
    return max(melody.beat_s, melody.seconds - clip_s)


@dataclass
class AudioOutput(Output):
    samples: np.ndarray | None = None  # (T,) mono or (2, T) stereo, float32 in [-1, 1] at sample_rate
    sample_rate: int = 0

    suffixes: ClassVar[tuple[str, ...]] = (".wav", ".flac", ".mp3", ".ogg")

    def write(self, path: Path) -> Path:
        from argen.io.audio import write_audio

        return write_audio(path, self.samples, self.sample_rate, self.metadata)

    def write_preview(self, path: Path) -> Path:
        from argen.io.spectrogram import write_spectrogram

        mono = self.samples if self.samples.ndim == 1 else self.samples.mean(0)
        return write_spectrogram(path, mono, self.sample_rate, self.metadata)

    def record(self) -> dict[str, Any]:
        return {"seed": self.seed, "prompt": self.prompt, "seconds": round(self.samples.shape[-1] / self.sample_rate, 3),
                "model": self.metadata.get("model")}


class AudioPipeline(Pipeline):
    """The bundled melodies model: ``argen.load("melodies-audio")("square C4 E4 G4 C5", seed=0)``."""

    modality = "audio"
    argen_section = "audio"
    default_batch_size = 1  # one melody at a time: each has its own length

    def __init__(self, model: Transformer, codec: AudioCodec, layout: AudioLayout, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu", sampling: dict[str, float] | None = None) -> None:
        self.model, self.codec, self.layout, self.ref = model, codec, layout, ref
        self.device = torch.device(device)
        self.sampling_defaults = {"cfg_scale": 3.0, "temperature": 1.0, "top_k": 50, **(sampling or {})}
        if model.cfg.n_streams != layout.n_codebooks or codec.cfg.n_codebooks != layout.n_codebooks:
            raise ArgenError("the audio model and its codec do not match (number of codebooks)",
                             hint="keep the codec/ folder that was trained with the model")

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "AudioPipeline":
        refuse_options(options, "audio", "bundled audio")
        model, meta, layout, dev = load_argen_transformer(ref, device, dtype, "audio", AudioLayout)
        codec, _ = load_codec_dir(ref.path / meta.get("codec", "codec"))
        pipe = cls(model, codec.to(dev), layout, ref, dev, meta.get("sampling"))
        pipe.compile = compile
        return pipe

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The model's settings (config.json "sampling"), with ``overrides`` that are not None."""
        merged = {**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}}
        if merged.get("top_k") is not None:
            merged["top_k"] = int(merged["top_k"])  # YAML and JSON may hold it as 50.0
        return SamplingConfig(**merged)

    def check(self, spec: AudioSpec) -> None:
        from argen.io.audio import read_audio

        self._clip = read_audio(spec.extend, self.layout.sample_rate) if spec.extend is not None else None
        self._clip_name = Path(spec.extend).name if spec.extend is not None else None
        if spec.only_new and spec.extend is None:
            raise UsageError("--only-new goes with --extend", hint="drop --only-new, or give a clip to --extend")
        if spec.melody is not None:
            raise UsageError(f"{self.name} has no melody conditioning", hint="--melody is for MusicGen melody models")

    def check_prompt(self, prompt: str | None) -> str | None:
        if prompt is not None:
            melodies.parse_prompt(prompt)
        return prompt

    @torch.inference_mode()
    def generate_batch(self, spec: AudioSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[AudioOutput]:
        return [self.generate_one(spec, r, sampling, on_progress) for r in rows]

    def generate_one(self, spec: AudioSpec, row: Row, sampling: SamplingConfig, on_progress: OnProgress | None = None,
                     clip: np.ndarray | None = None, clip_name: str | None = None) -> AudioOutput:
        """One sample; ``clip`` ((T,) float32 at the model's rate) to continue, else --extend's file."""
        t0 = time.perf_counter()
        lay, sr = self.layout, self.layout.sample_rate
        if clip is None:
            clip, clip_name = getattr(self, "_clip", None), getattr(self, "_clip_name", None)
        given = clip
        # 1. prompt -> conditioning positions; the clip -> codes (frames complete in the clip only)
        prompt = lay.prompt(row.prompt)
        clip = clip if clip is not None else np.zeros(0, np.float32)
        whole = len(clip) // lay.hop
        clip_codes = self.codec.encode(torch.from_numpy(clip[: whole * lay.hop])[None].to(self.device))[0] if whole else None
        # 2. how many frames in all, and the delay pattern's fixed slots
        new_samples = int(round(new_seconds(row.prompt, given, spec.seconds) * sr))
        total_frames = -(-(len(clip) + new_samples) // lay.hop)
        known, forced = lay.forced(None if clip_codes is None else clip_codes.cpu(), total_frames, row.prompt)
        # 3. the engine's loop: one token per codebook per step (the guidance twin keeps the cue steps)
        uncond = [lay.prompt(None) + known] if sampling.guided else None
        steps_total = forced.shape[0]
        count = [0]

        def tick(_tok) -> None:
            count[0] += 1
            on_progress(count[0], steps_total, "steps")

        steps = generate(self.model, [prompt + known], steps_total, sampling, seed=row.seed,
                         rules=token_rules(uncond_prompts=uncond, forced=forced[None]), use_cache=self.use_cache,
                         compile=self.compile, on_token=tick if on_progress else None)[0]
        codes = lay.codes_from_steps(known + steps).to(self.device)  # (K, total_frames)
        # 4. codes -> samples; the clip's own samples stay as they were
        wave = self.codec.decode(codes[None])[0].float().clamp(-1, 1).cpu().numpy()
        new = wave[len(clip):len(clip) + new_samples]
        samples = (new if spec.only_new else np.concatenate([clip, new])).astype(np.float32)
        seconds = time.perf_counter() - t0
        meta = build_metadata(modality="audio", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                              prompt=row.prompt, extend=clip_name, seed=row.seed, sample_rate=sr,
                              duration=round(len(samples) / sr, 4), cfg=sampling.cfg_scale,
                              temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                              only_new=spec.only_new or None)
        return AudioOutput(row.index, row.seed, row.prompt, seconds, meta, samples=samples, sample_rate=sr)

    def summary(self, outputs: list[Output]) -> str:
        if not outputs:
            return "no audio"
        o = outputs[0]
        duration = o.samples.shape[-1] / o.sample_rate
        return (f"{duration:.2f} s of audio in {o.seconds:.2f} s ({duration / max(o.seconds, 1e-9):.1f}x real time, "
                f"{self.name}), seed {o.seed}")
