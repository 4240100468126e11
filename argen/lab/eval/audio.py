"""Audio evaluation: generate held-out melodies and continuations, and score them with the
melody analyser (notes within 50 cents, waveform class, tempo)."""

from __future__ import annotations

import json

import numpy as np

from argen.console import log
from argen.lab.analysis.melodies import analyse
from argen.lab.data import melodies

EVAL_SEED = 2024  # held-out: the prompts differ from every training melody's draw


def _rates(rows: list[dict], notes_total: int) -> dict:
    tempo = [r["tempo_error"] for r in rows if r["tempo_error"] is not None]
    return {"note_accuracy": round(sum(sum(r["notes_ok"]) for r in rows) / max(1, notes_total), 4),
            "wave_accuracy": round(float(np.mean([r["wave_ok"] for r in rows])), 4) if rows else float("nan"),
            "tempo_error": round(float(np.mean(tempo)), 4) if tempo else None,
            "tempo_within_5pct": round(float(np.mean([t < 0.05 for t in tempo])), 4) if tempo else None}


def audio_adherence(pipe, n: int = 100, seed: int = EVAL_SEED, sampling=None, continuations: int | None = None) -> dict:
    """Render ``n`` held-out prompts once each (seed ``seed + i``) and score them; then continue
    the first half of ``continuations`` (default n / 4) held-out melodies of 4+ notes without a
    prompt and check that the waveform and tempo carry on."""
    from argen.modalities.audio.spec import AudioSpec
    from argen.modalities.base import Row, sampling_flags

    sampling = sampling or pipe.default_sampling()
    spec = AudioSpec(**sampling_flags(sampling))
    pipe.check(spec)
    rows, notes = [], 0
    for i in range(n):
        prompt, _, mel = melodies.sample(seed, i, "val")
        out = pipe.generate_one(spec, Row(i, prompt, seed + i), sampling)
        rows.append(analyse(out.samples, mel))
        notes += len(mel.notes)
    report = {"prompts": n, "seed": seed, "cfg": sampling.cfg_scale, "temperature": sampling.temperature,
              "top_k": sampling.top_k, **_rates(rows, notes)}
    cont, j = [], 0
    want = continuations if continuations is not None else max(1, n // 4)
    while len(cont) < want:
        prompt, audio, mel = melodies.sample(seed + 1, j, "val")
        j += 1
        if len(mel.notes) < 4:
            continue
        half = len(mel.notes) // 2
        beat = int(round(mel.beat_s * melodies.SAMPLE_RATE))
        more = AudioSpec(**sampling_flags(sampling), seconds=(len(mel.notes) - half) * mel.beat_s)
        out = pipe.generate_one(more, Row(j, None, seed + 10_000 + j), sampling, clip=audio[: half * beat])
        # only the generated beats: the clip's half would carry the verdict otherwise
        r = analyse(out.samples[half * beat:], melodies.Melody(mel.wave, mel.notes[half:], mel.bpm, mel.bpm_stated))
        cont.append({"wave_ok": r["wave_ok"], "tempo_error": r["tempo_error"]})
    report["continuation_wave_kept"] = round(float(np.mean([c["wave_ok"] for c in cont])), 4)
    tempo = [c["tempo_error"] for c in cont if c["tempo_error"] is not None]
    report["continuation_tempo_within_5pct"] = round(float(np.mean([t < 0.05 for t in tempo])), 4) if tempo else None
    report["continuations"] = len(cont)
    return report


def run(model: str | None, n: int, cfg: float | None, temperature: float | None, device: str,
                   quiet: bool, json_out: bool) -> None:
    """`argen eval audio`: held-out prompts and continuations, scored by the melody analyser."""
    import time

    from argen.errors import UsageError
    from argen.modalities.audio.pipeline import AudioPipeline

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
