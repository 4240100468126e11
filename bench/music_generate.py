"""Seconds of audio per second of compute: argen's MusicGen against transformers' ``generate``
on the same random weights at musicgen-small's size (24 x 1024 decoder, t5-base, EnCodec 32 kHz).

Both sample with the published settings (top-k 250, temperature 1, guidance 3, so every step
runs the guidance twins), end to end: T5, the decoder loop, EnCodec's decoder. The random
checkpoint is written by ``save_pretrained`` to a temporary folder and argen loads it from
there, as it would a downloaded one. Real-time factor (RTF) = audio seconds made / seconds of
compute, the process's CPU time (on a machine shared with other jobs, wall time mostly measures
the neighbours; CPU time is the work done; with ``--threads 1`` the two agree on an idle
machine); wall seconds are printed too. Ratio = argen's RTF / transformers' RTF, measured in
the same process, runs alternating, best of ``--repeats``.

    nice -n 10 python bench/music_generate.py      # 8 s, batch 1 and 4, every mode below
    python bench/music_generate.py --seconds 2 --batch 1 --dtypes float32 int8 --hf-dtypes float32

``--dtypes`` sets argen's decoder mode: float32, bfloat16 (``--dtype bfloat16``) or int8
(``--quantize int8``: int8 weights in the decoder's self- and cross-attention, MLPs and heads,
bfloat16 activations); ``--hf-dtypes`` transformers' baselines (bfloat16: its T5, projection and
decoder, EnCodec kept in float32 as argen keeps it). Every argen mode is compared with every
baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROMPTS = ["lo-fi beat with piano", "calm strings", "loud guitar with drums", "slow jazz synth"]


def build_small(folder: Path):
    """A random transformers MusicGen at musicgen-small's size, saved with a word tokenizer."""
    from musicgen_fixtures import save_tokenizer
    from test_musicgen_params import ENCODEC_32K, SMALL, T5_BASE
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    torch.manual_seed(0)
    t5 = T5Config(**{k: v for k, v in T5_BASE.items() if k != "model_type"})
    codec = EncodecConfig(**{k: v for k, v in ENCODEC_32K.items() if k != "model_type"})
    dec = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, **SMALL)
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(),
                                                            decoder=dec.to_dict())).eval()
    gen = model.generation_config
    gen.decoder_start_token_id = gen.pad_token_id = gen.bos_token_id = 2048
    model.save_pretrained(str(folder))
    save_tokenizer(folder)
    return model


def hf_in(model, dtype: str):
    """transformers' model with T5, the projection and the decoder in ``dtype`` (EnCodec float32)."""
    if dtype == "float32":
        return model
    import copy

    other = copy.deepcopy(model)
    for part in (other.text_encoder, other.enc_to_dec_proj, other.decoder):
        part.to(getattr(torch, dtype))
    return other


def time_hf(model, folder: Path, prompts: list[str], frames: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of transformers' generate, tokenizer to samples."""
    from transformers import AutoTokenizer

    t0, c0 = time.perf_counter(), time.process_time()
    inputs = AutoTokenizer.from_pretrained(str(folder))(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    with torch.inference_mode():
        audio = model.generate(**inputs, do_sample=True, top_k=250, temperature=1.0, guidance_scale=3.0,
                               max_new_tokens=frames + 3)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    assert audio.shape[-1] == frames * 640, audio.shape
    return cpu, wall


def time_argen(mg, prompts: list[str], seconds: float) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of argen's generate, prompts to samples."""
    from argen.engine.sampling.processors import SamplingConfig

    t0, c0 = time.perf_counter(), time.process_time()
    audio = mg.generate(prompts, list(range(len(prompts))), seconds, SamplingConfig(**mg.defaults))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    assert audio[0].shape[-1] == round(seconds * 50) * 640
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"],
                    choices=["float32", "bfloat16", "int8"], help="argen decoder modes (see above)")
    ap.add_argument("--hf-dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                    help="transformers dtypes (see above)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from argen.modalities.audio.musicgen.model import MusicGen

    frames = round(args.seconds * 50)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        hf = build_small(Path(tmp))
        hfs = {d: hf_in(hf, d) for d in args.hf_dtypes}
        ours = {d: MusicGen.from_pretrained(tmp, dtype=torch.float32 if d == "float32" else torch.bfloat16,
                                            quantize="int8" if d == "int8" else "none") for d in args.dtypes}
        print(f"built and loaded in {time.perf_counter() - t0:.0f} s; {torch.get_num_threads()} threads; "
              f"{args.seconds:g} s of audio, guidance 3, top-k 250", flush=True)
        for b in args.batch:
            prompts = PROMPTS[:b]
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for d, model in hfs.items():
                    best["hf " + d] = min(best.get("hf " + d, (1e9, 0)), time_hf(model, Path(tmp), prompts, frames))
                for d, mg in ours.items():
                    best[d] = min(best.get(d, (1e9, 0)), time_argen(mg, prompts, args.seconds))
            rtf = {k: b * args.seconds / cpu for k, (cpu, _) in best.items()}
            for d in args.hf_dtypes:
                cpu, wall = best["hf " + d]
                print(f"batch {b}: transformers {d} {cpu:.1f} s CPU ({wall:.1f} s wall), RTF {rtf['hf ' + d]:.3f}",
                      flush=True)
            for d in args.dtypes:
                ratios = ", ".join(f"{rtf[d] / rtf['hf ' + h]:.2f}x transformers {h}" for h in args.hf_dtypes)
                cpu, wall = best[d]
                print(f"batch {b}: argen {d} {cpu:.1f} s CPU ({wall:.1f} s wall), RTF {rtf[d]:.3f}: {ratios}",
                      flush=True)


if __name__ == "__main__":
    main()
