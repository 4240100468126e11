"""Generate audio with codec tokens and the delay pattern: a melody from a prompt
(`--prompt "square C4 E4 G4 C5 at 120 bpm"`), or the continuation of a clip (`--extend
clip.wav`, any file ffmpeg reads). Writes WAV, FLAC, MP3 or Ogg by the output's suffix
(generation metadata in its tags; `argen info FILE` prints it) and prints the path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import check_preview, log


def audio(
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="<wave> <note> ...[ at <bpm> bpm], e.g. 'square C4 E4 G4 C5 at 120 bpm'.")] = None,
    extend: Annotated[Optional[Path], typer.Option("--extend", metavar="CLIP", help="Continue this clip (resampled to 16 kHz, mixed to mono).")] = None,
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="Seconds of new audio (default: the prompted melody's length; 4 after a clip without a prompt).")] = None,
    cfg: opt.Cfg = None,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    preview: Annotated[Optional[Path], typer.Option("--preview", metavar="PNG", help="Also write a spectrogram picture.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Audio path (.wav .flac .mp3 .ogg); {seed} is filled in.")] = Path("audio-{seed}.wav"),
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    from argen.data.melodies import SAMPLE_RATE, parse_prompt
    from argen.io.audio import check_audio_suffix, read_audio, write_audio
    from argen.pipelines.audio import AudioPipeline, AudioRequest
    from argen.samplers.processors import SamplingConfig

    check_audio_suffix(output)
    check_preview(preview)
    if prompt is not None:
        parse_prompt(prompt)
    SamplingConfig(temperature=temperature or 0.0, top_k=top_k, cfg_scale=cfg or 0.0)  # checked before any model loads
    clip = read_audio(extend, SAMPLE_RATE) if extend is not None else None
    req = AudioRequest(prompt=prompt, clip=clip, clip_name=extend.name if extend else None, seconds=seconds, seed=seed)
    pipe = AudioPipeline.from_pretrained(model, device=device)
    req.sampling = pipe.default_sampling(cfg_scale=cfg, temperature=temperature, top_k=top_k)
    out = pipe(req)
    path = write_audio(Path(str(output).format(seed=out.seed, i=0)), out.samples, out.sample_rate, out.metadata)
    duration = len(out.samples) / out.sample_rate
    log(f"{duration:.2f} s of audio in {out.seconds:.2f} s ({duration / max(out.seconds, 1e-9):.1f}x real time, {pipe.name}), "
        f"seed {out.seed}", quiet)
    if preview is not None:
        from argen.io.spectrogram import write_spectrogram

        write_spectrogram(preview, out.samples, out.metadata)
    print(json.dumps({"path": str(path), "seed": out.seed, "seconds": round(duration, 3), "model": pipe.name}) if json_out else path)


def evaluate_audio(model: str | None, n: int, cfg: float | None, temperature: float | None, device: str,
                   quiet: bool, json_out: bool) -> None:
    """`argen eval audio`: held-out prompts and continuations, scored by the melody analyser."""
    import time

    from argen.errors import UsageError
    from argen.evaluate_audio import audio_adherence
    from argen.pipelines.audio import AudioPipeline

    if not 1 <= n <= 10_000:
        raise UsageError(f"--n must be in [1, 10000], got {n}", hint="e.g. --n 100")
    pipe = AudioPipeline.from_pretrained(model, device=device)
    t0 = time.time()
    report = audio_adherence(pipe, n, sampling=pipe.default_sampling(cfg_scale=cfg, temperature=temperature))
    log(f"generated and analysed {n} melodies and {report['continuations']} continuations in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **report}))
        return
    for key in ("note_accuracy", "wave_accuracy", "tempo_within_5pct", "tempo_error", "continuation_wave_kept",
                "continuation_tempo_within_5pct"):
        value = report[key]
        print(f"{key:32s} {'n/a' if value is None else f'{value * 100:.1f}%'}")
