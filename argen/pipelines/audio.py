"""Audio generation and continuation: prompt -> conditioning ids; clip -> codec codes -> the
delay pattern's first steps; the engine's next-token loop samples one token per codebook per
step (KV cache, CFG, the delay pattern's fixed slots forced) -> codes -> the codec's decoder ->
16 kHz samples (the clip's own samples kept bit-exact at the start) (+ metadata)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from argen import weights
from argen.data import melodies
from argen.device import resolve_device
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.models.audio_codec import AudioCodec, load_codec_dir
from argen.models.audio_layout import AudioLayout
from argen.models.loader import load_transformer
from argen.models.transformer import Transformer
from argen.samplers.next_token import generate
from argen.samplers.processors import SamplingConfig

MAX_SECONDS = 600.0
EXTEND_ONLY_SECONDS = 4.0  # new audio after a clip when no prompt says how long the melody is


@dataclass
class AudioRequest:
    prompt: str | None = None
    clip: np.ndarray | None = None  # (T,) float32 at the model's rate: the start to continue
    clip_name: str | None = None
    seconds: float | None = None  # new audio; None: the prompted melody's length (what the clip has not played yet)
    sampling: SamplingConfig | None = None
    seed: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        if self.seconds is not None and not 0 < self.seconds <= MAX_SECONDS:
            raise UsageError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {self.seconds:g}", hint="e.g. --seconds 4")
        if self.prompt is None and self.clip is None:
            raise UsageError("give a prompt, a clip to extend, or both", hint='e.g. --prompt "square C4 E4 G4 C5"')
        if self.seed is None:
            self.seed = random.randrange(2**31)

    def new_seconds(self) -> float:
        if self.seconds is not None:
            return self.seconds
        clip_s = 0.0 if self.clip is None else len(self.clip) / melodies.SAMPLE_RATE
        if self.prompt is None:
            return EXTEND_ONLY_SECONDS
        melody = melodies.parse_prompt(self.prompt)
        return max(melody.beat_s, melody.seconds - clip_s)


@dataclass
class AudioOutput:
    samples: np.ndarray  # (T,) float32 in [-1, 1] at sample_rate
    sample_rate: int
    seed: int
    seconds: float  # compute time
    metadata: dict[str, Any] = field(default_factory=dict)


class AudioPipeline:
    """``AudioPipeline.from_pretrained("melodies-audio")(AudioRequest("square C4 E4 G4 C5"))``."""

    modality = "audio"

    def __init__(self, model: Transformer, codec: AudioCodec, layout: AudioLayout, ref: weights.ModelRef | None = None,
                 device: torch.device | str = "cpu", sampling: dict[str, float] | None = None) -> None:
        self.model, self.codec, self.layout, self.ref = model, codec, layout, ref
        self.device = torch.device(device)
        self.sampling_defaults = {"cfg_scale": 3.0, "temperature": 1.0, "top_k": 50, **(sampling or {})}
        if model.cfg.n_streams != layout.n_codebooks or codec.cfg.n_codebooks != layout.n_codebooks:
            raise ArgenError("the audio model and its codec do not match (number of codebooks)",
                             hint="keep the codec/ folder that was trained with the model")

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto") -> "AudioPipeline":
        ref = weights.resolve(name_or_path or weights.default_model("audio"), "audio")
        model, info = load_transformer(ref.path)
        meta = info.get("config") or {}
        if info.get("modality") != "audio" or "audio" not in meta:
            raise ArgenError(f"{ref.name} is not an audio model", hint="pick an audio model (see `argen models`)")
        layout = AudioLayout.from_dict(meta["audio"])
        codec, _ = load_codec_dir(ref.path / meta.get("codec", "codec"))
        dev = resolve_device(device)
        return cls(model.to(dev), codec.to(dev), layout, ref, dev, meta.get("sampling"))

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        """The model's settings (config.json "sampling"), with ``overrides`` that are not None."""
        merged = {**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}}
        if merged.get("top_k") is not None:
            merged["top_k"] = int(merged["top_k"])  # YAML and JSON may hold it as 50.0
        return SamplingConfig(**merged)

    @torch.inference_mode()
    def __call__(self, req: AudioRequest) -> AudioOutput:
        t0 = time.perf_counter()
        lay, sr = self.layout, self.layout.sample_rate
        sampling = req.sampling or self.default_sampling()
        # 1. prompt -> conditioning positions; the clip -> codes (frames complete in the clip only)
        prompt = lay.prompt(req.prompt)
        clip = req.clip if req.clip is not None else np.zeros(0, np.float32)
        whole = len(clip) // lay.hop
        clip_codes = self.codec.encode(torch.from_numpy(clip[: whole * lay.hop])[None].to(self.device))[0] if whole else None
        # 2. how many frames in all, and the delay pattern's fixed slots
        new_samples = int(round(req.new_seconds() * sr))
        total_frames = -(-(len(clip) + new_samples) // lay.hop)
        known, forced = lay.forced(None if clip_codes is None else clip_codes.cpu(), total_frames, req.prompt)
        # 3. the engine's loop: one token per codebook per step (the guidance twin keeps the cue steps)
        uncond = [lay.prompt(None) + known] if sampling.guided else None
        steps = generate(self.model, [prompt + known], forced.shape[0], sampling, seed=req.seed,
                         uncond_prompts=uncond, forced=forced[None], use_cache=req.use_cache)[0]
        codes = lay.codes_from_steps(known + steps).to(self.device)  # (K, total_frames)
        # 4. codes -> samples; the clip's own samples stay as they were
        wave = self.codec.decode(codes[None])[0].float().clamp(-1, 1).cpu().numpy()
        samples = np.concatenate([clip, wave[len(clip):len(clip) + new_samples]]).astype(np.float32)
        seconds = time.perf_counter() - t0
        meta = build_metadata(modality="audio", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                              prompt=req.prompt, extend=req.clip_name, seed=req.seed, sample_rate=sr,
                              duration=round(len(samples) / sr, 4), cfg=sampling.cfg_scale,
                              temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
        return AudioOutput(samples, sr, req.seed, seconds, meta)
