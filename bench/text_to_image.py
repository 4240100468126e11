"""Janus text-to-image speed: images/s of argen against transformers' own Janus generation
(``JanusForConditionalGeneration.generate(..., generation_mode="image")``) on the same random
weights, CFG on (scale 5, sampling at temperature 1, no top-k), measured in one process.

The model has Janus-Pro-1B's width (2048, 16 heads, SwiGLU 5632, 102400 text ids, codebook
16384 x 8, 576 tokens, the VQ-16 decoder at 384 px) and, to fit a shared CPU, fewer of its 24
layers (``--layers``); the SigLIP understanding tower, unused for generation, is one tiny layer.
argen's modes (``--modes``): ``float32``, ``bfloat16`` (``--dtype bfloat16``) and ``int8``
(``--quantize int8``: int8 weights, bfloat16 activations). transformers' baselines
(``--hf-dtypes``): float32, and bfloat16 (its fastest own CPU mode; transformers 5 loads the
released bfloat16 weights as they are), a copy of the same weights. Every argen mode is compared
with every baseline. Token sampling and VQ decoding are timed apart; images/s counts both; the
best of ``--repeats`` counts. The baselines run first, then each argen mode (one model in memory
at a time besides transformers'), so run it on a quiet machine.

Run: ``nice python bench/text_to_image.py [--layers 2] [--batches 1 4] [--modes float32 bfloat16 int8]
[--hf-dtypes float32 bfloat16] [--tokens 576] [--threads 1] [--repeats 1]``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "a red cat"  # every row the same: transformers' positions ignore left padding, so no padding


def best_of(fn, repeats: int) -> tuple[object, float]:
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2, help="language-model layers (Janus-Pro-1B has 24)")
    ap.add_argument("--tokens", type=int, default=576, help="image tokens (a square number; 576 = 24x24)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--modes", nargs="+", default=["float32", "bfloat16", "int8"], choices=["float32", "bfloat16", "int8"],
                    help="argen: float32, bfloat16, int8 (int8 weights, bfloat16 activations)")
    ap.add_argument("--hf-dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                    help="transformers' baselines")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import GenerationConfig

    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.image.janus.pipeline import JanusImage
    from tests.janus_tiny import make_tokenizer, save_tiny_janus

    grid = int(round(args.tokens ** 0.5))
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    ref = save_tiny_janus(folder, text_vocab=102400, hidden=2048, layers=args.layers, heads=16, kv_heads=16,
                          inter=5632, grid=grid, codebook=16384, max_pos=16384, vq_ch=128, vq_mult=(1, 1, 2, 2, 4),
                          vq_blocks=2, vq_latent=256)
    gen_cfg = GenerationConfig.from_pretrained(folder)
    gen_cfg.update(do_sample=True, guidance_scale=5.0, temperature=1.0, top_k=0, top_p=1.0)
    sampling = SamplingConfig(temperature=1.0, cfg_scale=5.0)
    ids = torch.tensor([make_tokenizer().encode(f"<|User|>: {PROMPT}\n\n<|Assistant|>:<begin_of_image>").ids])
    print(f"Janus-Pro-1B width, {args.layers} of 24 layers, {grid}x{grid} tokens, {16 * grid} px; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; CFG 5, temperature 1; best of {args.repeats}")

    # (name, batch) -> (best sampling seconds, best decoding seconds)
    results: dict[tuple[str, int], tuple[float, float]] = {}

    def measure(name: str, b: int, sample, decode) -> None:
        t_s = t_d = float("inf")
        for _ in range(args.repeats):
            toks, s = best_of(sample, 1)
            _, d = best_of(lambda: decode(toks), 1)
            t_s, t_d = min(t_s, s), min(t_d, d)
        results[(name, b)] = (t_s, t_d)
        print(f"  {name:22s} batch {b}: tokens {t_s:7.2f} s ({b * args.tokens / t_s:6.1f} tokens/s), "
              f"decode {t_d:6.2f} s, {b / (t_s + t_d):.4f} images/s", flush=True)

    for dtype in args.hf_dtypes:
        hf = ref if dtype == "float32" else copy.deepcopy(ref).to(getattr(torch, dtype))
        for b in args.batches:
            x = ids.expand(b, -1)

            def hf_run(x=x, hf=hf):
                with torch.no_grad():
                    return hf.generate(x, attention_mask=torch.ones_like(x), generation_config=gen_cfg,
                                       generation_mode="image")

            def hf_decode(toks, hf=hf):
                with torch.no_grad():
                    return hf.decode_image_tokens(toks)

            measure(f"transformers {dtype}", b, hf_run, hf_decode)
        del hf
        gc.collect()
    for mode in args.modes:
        dtype = torch.float32 if mode == "float32" else torch.bfloat16
        pipe = JanusImage.from_pretrained(folder, dtype=dtype, quantize="int8" if mode == "int8" else "none")
        for b in args.batches:
            measure(f"argen {mode}", b, lambda p=pipe, b=b: p.sample_tokens([PROMPT] * b, seeds=list(range(b)),
                                                                            sampling=sampling), pipe.decode_float)
        del pipe
        gc.collect()
    print("ratios (argen / transformers; token sampling, images/s):")
    for mode in args.modes:
        for dtype in args.hf_dtypes:
            for b in args.batches:
                (hs, hd), (as_, ad) = results[(f"transformers {dtype}", b)], results[(f"argen {mode}", b)]
                print(f"  argen {mode} vs transformers {dtype}, batch {b}: {hs / as_:.2f}x token sampling, "
                      f"{(hs + hd) / (as_ + ad):.2f}x images/s")
    tmp.cleanup()


if __name__ == "__main__":
    main()
