"""Training the audio language model (MusicGen-style) on codec tokens of procedural melodies.

Each training sequence is a melody's prompt words followed by its codes in the delay pattern,
with the layout's beat cues, and up to ``max_silence`` seconds of silence after the melody so
that the model learns to stop playing. For a share of sequences the prompt's words are dropped
(the classifier-free-guidance twin, which keeps the cues), and for another share the cues go
too (a continuation without a prompt). The loss is the cross-entropy of every codebook's next code; the delay
pattern's PAD slots are fixed at sampling time and carry no loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import copy_folder, save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.lab.data import melodies
from argen.lab.recipes import TrainRecipe
from argen.modalities.audio.codec import load_codec_dir
from argen.modalities.audio.layout import AudioLayout

CAPTION_DROP = 0.1  # sequences without the prompt's words (the guidance twin)
CUE_DROP = 0.1  # sequences without the words and the cues (continuing a clip with no prompt)
IGNORE = -100


class AudioTask:
    modality = "audio"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        self.codec_dir = Path(d.codec)
        self.codec, _ = load_codec_dir(self.codec_dir)
        c = self.codec.cfg
        self.layout = AudioLayout(n_codebooks=c.n_codebooks, codebook_size=c.codebook_size, sample_rate=c.sample_rate,
                                  hop=c.hop, beat_cues=True)
        self.train = self._encode(d.seed, "train", d.train_size, d.max_silence)
        self.val = self._encode(d.seed, "val", min(d.val_size, 200), d.max_silence)
        self.max_len = max(len(p) + len(s) for p, s in self.train + self.val)

    @torch.no_grad()
    def _encode(self, seed: int, split: str, n: int, max_silence: float) -> list[tuple[list, list]]:
        """(prompt positions, delay-pattern steps) of melodies 0..n-1 of a split."""
        rows = []
        for i in range(n):
            prompt, audio, _ = melodies.sample(seed, i, split)
            rng = np.random.default_rng([seed, 7, i])
            silence = np.zeros(int(rng.uniform(0, max_silence) * melodies.SAMPLE_RATE), np.float32)
            wave = np.concatenate([audio, silence])
            codes = self.codec.encode(torch.from_numpy(wave)[None])[0]  # (K, F)
            lay = self.layout
            rows.append((lay.prompt(prompt), lay.with_cues(lay.delayed_steps(codes), lay.cues(prompt))))
        return rows

    def build_model(self, overrides: dict) -> Transformer:
        lay = self.layout
        return Transformer(TransformerConfig(vocab_size=lay.vocab_size, n_streams=lay.n_codebooks,
                                             cond_vocab=len(lay.words), max_seq_len=self.max_len, **overrides))

    def make_batch(self, rows: list[tuple[list, list]], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded inputs (B, L, K) and next-step targets (B, L, K), IGNORE where no loss."""
        lay = self.layout
        u = torch.rand(len(rows), generator=gen).tolist()
        seqs = [(p if r >= CAPTION_DROP + CUE_DROP else lay.prompt(None), s if r >= CUE_DROP else lay.without_cues(s))
                for (p, s), r in zip(rows, u)]
        width = max(len(p) + len(s) for p, s in seqs) - 1
        x = torch.full((len(rows), width, lay.n_codebooks), lay.pad, dtype=torch.long)
        y = torch.full_like(x, IGNORE)
        for b, (p, s) in enumerate(seqs):
            seq = torch.tensor(p + s, dtype=torch.long)  # (L, K)
            x[b, : len(seq) - 1] = seq[:-1]
            target = seq[1:].clone()
            target[: len(p) - 1] = IGNORE  # the prompt is given, not predicted
            target[target == lay.pad] = IGNORE  # delay-pattern fillers are forced when sampling
            target[target[:, :1].expand_as(target) >= lay.vocab_size] = IGNORE  # and so are the cues
            y[b, : len(seq) - 1] = target
        return x, y

    def batch(self, batch_size: int, gen: torch.Generator):
        idx = torch.randint(0, len(self.train), (batch_size,), generator=gen).tolist()
        return self.make_batch([self.train[i] for i in idx], gen)

    def loss(self, model: Transformer, batch) -> torch.Tensor:
        x, y = batch
        logits = model(x).float()  # (B, L, K * V)
        return F.cross_entropy(logits.view(-1, self.layout.stream_vocab), y.flatten(), ignore_index=IGNORE)

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        gen = torch.Generator().manual_seed(0)
        losses = []
        for i in range(batches):
            rows = [self.val[(i * batch_size + j) % len(self.val)] for j in range(batch_size)]
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                losses.append(self.loss(model, self.make_batch(rows, gen)).item())
        return float(np.mean(losses))

    def default_sampling(self) -> dict:
        return {"cfg_scale": 3.0, "temperature": 1.0, "top_k": 50, **(self.recipe.sampling or {})}

    def final_metrics(self, model: Transformer) -> dict:
        from argen.lab.eval.audio import audio_adherence
        from argen.modalities.audio.pipeline import AudioPipeline

        pipe = AudioPipeline(model, self.codec, self.layout, sampling=self.default_sampling())
        report = audio_adherence(pipe, self.recipe.data.eval_prompts)
        return {**report, "val_melodies": len(self.val), "train_melodies": len(self.train)}

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        save_model_dir(out, model, self.modality, {"name": self.recipe.name, "audio": self.layout.to_dict(),
                                                   "codec": "codec", "sampling": self.default_sampling(),
                                                   "training": training}, getattr(torch, self.recipe.train.save_dtype))
        copy_folder(self.codec_dir, Path(out) / "codec")

    def card(self, s: dict) -> str:
        d = self.recipe.data
        pct = lambda v: "n/a" if v is None else f"{v * 100:.1f}%"  # noqa: E731
        return f"""- Data: the procedural melodies dataset (`argen/data/melodies.py`, seed {d.seed}):
  {s['train_melodies']:,} training melodies with up to {d.max_silence} s of trailing silence, encoded by
  the codec in `codec/` (trained by `recipes/train/audio-codec-melodies.yaml`).
- Score on {s['prompts']} held-out prompts (`argen eval audio`, seed {s['seed']}, cfg {s['cfg']},
  temperature {s['temperature']}, top-k {s['top_k']}): note accuracy **{pct(s['note_accuracy'])}**
  (within 50 cents), waveform accuracy **{pct(s['wave_accuracy'])}**, tempo within 5% on
  {pct(s['tempo_within_5pct'])} of the melodies (mean error {pct(s['tempo_error'])}).
  Continuations of {s['continuations']} half melodies without a prompt keep the waveform in
  {pct(s['continuation_wave_kept'])} and the tempo (5%) in {pct(s['continuation_tempo_within_5pct'])}.
"""
