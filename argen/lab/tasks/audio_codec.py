"""Training the audio codec (conv encoder/decoder + RVQ) on procedural melodies.

The loss is the reconstruction part of SoundStream/EnCodec's, without the adversarial terms:
multi-resolution spectral convergence and log magnitude (three FFT sizes), L1 and MSE on the
waveform, and the quantiser's commitment loss. The first steps train a plain autoencoder; then the codebooks are
seeded from the encoder's features and the quantiser takes over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from argen.lab.analysis.melodies import analyse
from argen.lab.data import melodies
from argen.lab.recipes import TrainRecipe
from argen.lab.tasks.finetune import card_line, load_for_decoder_finetune
from argen.modalities.audio.codec import AudioCodec, CodecConfig, load_codec_dir, save_codec_dir

RESTART_EVERY = 50  # steps between dead-code restarts
AE_WARMUP = 300  # steps as a plain autoencoder before the quantiser starts
FFT_SIZES = (256, 512, 1024)
MSE_WEIGHT = 10.0
LOG_FLOOR = 1e-2  # -40 dB under the clip's loudest STFT bin
LOG_WEIGHT = 1.0
ANALYSED = 100  # validation clips whose reconstructions the melody analyser reads


def stft_loss(rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss of (B, T) waveforms: spectral convergence plus a log-magnitude
    L1 whose floor sits 40 dB under each clip's loudest bin. (With a fixed tiny floor the
    silent bins, nearly all of them in these few-harmonic melodies, dominated the log term and
    drove the codec to output near silence; the relative floor keeps the weak harmonics that
    tell a triangle from a sine, and penalises noise in the silent bins only down to -40 dB.)"""
    total = rec.new_zeros(())
    for n in FFT_SIZES:
        win = torch.hann_window(n, device=rec.device)

        def mag(x: torch.Tensor) -> torch.Tensor:
            return torch.stft(x, n, n // 4, window=win, return_complex=True).abs()  # (B, n/2+1, F)

        a, b = mag(rec), mag(ref)
        floor = LOG_FLOOR * b.amax(dim=(1, 2), keepdim=True).clamp_min(1e-5)  # (B, 1, 1)
        total = total + torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp_min(1e-8)
        total = total + LOG_WEIGHT * ((a + floor).log() - (b + floor).log()).abs().mean()
    return total / len(FFT_SIZES)


def si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant signal-to-noise ratio (dB) of one clip."""
    est, ref = est - est.mean(), ref - ref.mean()
    target = (est @ ref) / max(ref @ ref, 1e-12) * ref
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-12) / max(noise @ noise, 1e-12)))


@torch.no_grad()
def reconstruct(model: AudioCodec, clip: np.ndarray) -> np.ndarray:
    wav = torch.from_numpy(clip)[None]
    return model.decode(model.encode(wav))[0, : len(clip)].numpy()


class AudioCodecTask:
    modality = "audio-codec"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        self.train = [melodies.sample(d.seed, i, "train")[1] for i in range(d.train_size)]
        self.val = [melodies.sample(d.seed, i, "val") for i in range(d.val_size)]
        self.crop = int(d.crop_seconds * melodies.SAMPLE_RATE)
        gen = torch.Generator().manual_seed(0)
        self.val_crops = self._crops([a for _, a, _ in self.val], gen)
        self.steps = 0
        self.restarts = 0

    def _crops(self, clips: list[np.ndarray], gen: torch.Generator) -> torch.Tensor:
        out = np.zeros((len(clips), self.crop), dtype=np.float32)
        for j, clip in enumerate(clips):
            start = int(torch.randint(0, max(1, len(clip) - self.crop + 1), (), generator=gen))
            piece = clip[start:start + self.crop]
            out[j, :len(piece)] = piece
        return torch.from_numpy(out)

    def build_model(self, overrides: dict) -> AudioCodec:
        base = self.recipe.data.decoder_finetune
        if not base:
            self.cfg = CodecConfig(**overrides)
            return AudioCodec(self.cfg)
        model = load_for_decoder_finetune(base, load_codec_dir, overrides, "codec")
        self.cfg = model.cfg
        return model

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(self.train), (batch_size,), generator=gen).tolist()
        gain = 0.5 + torch.rand(batch_size, 1, generator=gen)  # levels between 0.5x and 1.5x
        return self._crops([self.train[i] for i in idx], gen) * gain

    def loss(self, model: AudioCodec, x: torch.Tensor) -> torch.Tensor:
        first_stage = model.training and not model.codes_frozen
        warm = first_stage and self.steps < AE_WARMUP
        if first_stage and self.steps == AE_WARMUP:  # the quantiser starts from the features
            with torch.no_grad():
                model.quantizer.init_from(model.encoder(model._pad(x)[:, None]).float())
        rec, commit = model(x, n_q=0 if warm else None)
        rec = rec.float()[:, : x.shape[1]]
        if model.training:
            self.steps += 1
            if first_stage and self.steps > AE_WARMUP and self.steps % RESTART_EVERY == 0:
                self.restarts += model.quantizer.restart_dead_codes()
        err = rec - x
        return stft_loss(rec, x) + err.abs().mean() + MSE_WEIGHT * err.pow(2).mean() + commit

    def quick_val_loss(self, model: AudioCodec, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        x = self.val_crops[: batches * batch_size]
        with torch.no_grad():
            rec = model.decode(model.encode(x))[:, : x.shape[1]]
            return float(stft_loss(rec, x))

    def final_metrics(self, model: AudioCodec) -> dict:
        snrs, notes_ok, notes, waves, kept = [], 0, 0, 0, 0
        codes = set()
        base = self.recipe.data.decoder_finetune
        before = load_codec_dir(base)[0] if base else None
        for j, (_, clip, melody) in enumerate(self.val):
            rec = reconstruct(model, clip)
            snrs.append(si_snr(rec, clip))
            mine = model.encode(torch.from_numpy(clip)[None])
            codes.update(mine[0, 0].tolist())
            kept += before is not None and torch.equal(mine, before.encode(torch.from_numpy(clip)[None]))
            if j < ANALYSED:
                r = analyse(rec, melody)
                notes_ok += sum(r["notes_ok"])
                notes += len(melody.notes)
                waves += r["wave_ok"]
        n_an = min(ANALYSED, len(self.val))
        return {"si_snr": round(float(np.mean(snrs)), 2), "codes_used_first_codebook": len(codes),
                "note_accuracy_on_reconstructions": round(notes_ok / max(1, notes), 4),
                "wave_accuracy_on_reconstructions": round(waves / max(1, n_an), 4),
                "val_clips": len(self.val), "train_clips": len(self.train), "restarts": self.restarts,
                **({"decoder_finetune": base, "val_clips_with_unchanged_codes": kept} if base else {})}

    def save(self, out: Path, model: AudioCodec, training: dict) -> None:
        save_codec_dir(out, model, {"name": self.recipe.name, "training": training},
                       getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d, c = self.recipe.data, self.cfg
        tuned = card_line(d.decoder_finetune, s.get("val_clips_with_unchanged_codes"), s["val_clips"], "melodies")
        return f"""- Data: the procedural melodies dataset (`argen/data/melodies.py`, seed {d.seed}):
  {s['train_clips']:,} training melodies (random {d.crop_seconds} s crops), {s['val_clips']} validation melodies.
{tuned}- Codec: {c.n_codebooks} codebooks of {c.codebook_size} codes at {c.frame_rate:g} frames/s,
  {c.sample_rate // 1000} kHz mono.
- Score: reconstruction SI-SNR **{s['si_snr']} dB** on the whole validation melodies; the melody
  analyser finds {s['note_accuracy_on_reconstructions'] * 100:.1f}% of the notes and
  {s['wave_accuracy_on_reconstructions'] * 100:.1f}% of the waveforms in {ANALYSED} reconstructions.
"""
