"""Janus text-to-image speed: images/s of argen against transformers' own Janus generation
(``JanusForConditionalGeneration.generate(..., generation_mode="image")``) on the same random
weights, CFG on (scale 5, sampling at temperature 1, no top-k), measured in one process.

The model has Janus-Pro-1B's width (2048, 16 heads, SwiGLU 5632, 102400 text ids, codebook
16384 x 8, 576 tokens, the VQ-16 decoder at 384 px) and, to fit a shared CPU, fewer of its 24
layers (``--layers``); the SigLIP understanding tower, unused for generation, is one tiny layer.
Modes: float32 against float32, bfloat16 against bfloat16, and argen's int8 weights (bfloat16
activations) against transformers' bfloat16 (its fastest own CPU mode; transformers 5 loads the
released bfloat16 weights as they are). Token sampling and VQ decoding are timed apart; images/s
counts both. The two run alternately (order swapped every repeat); the best of ``--repeats`` counts.

Run: ``nice python bench/text_to_image.py [--layers 2] [--batches 1 4] [--modes float32 bfloat16 int8]
[--tokens 576] [--threads 1] [--repeats 1]``.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--modes", nargs="+", default=["float32", "bfloat16", "int8"])
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

    def hf_run(b: int):
        x = ids.expand(b, -1)
        with torch.no_grad():
            toks = ref.generate(x, attention_mask=torch.ones_like(x), generation_config=gen_cfg, generation_mode="image")
        return toks

    def hf_decode(toks):
        with torch.no_grad():
            return ref.decode_image_tokens(toks)

    results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for mode in args.modes:
        dtype = torch.float32 if mode == "float32" else torch.bfloat16
        pipe = JanusImage.from_pretrained(folder, dtype=dtype, quantize="int8" if mode == "int8" else "none")
        ref.to(dtype)  # transformers in float32, else in bfloat16 (its fastest own CPU mode)
        base = str(dtype).removeprefix("torch.")
        for b in args.batches:
            runs = {f"transformers {base}": (lambda: hf_run(b), hf_decode),
                    f"argen {mode}": (lambda p=pipe, b=b: p.sample_tokens([PROMPT] * b, seeds=list(range(b)), sampling=sampling),
                                      pipe.decode_float)}
            best = {name: (float("inf"), float("inf")) for name in runs}
            for r in range(args.repeats):  # alternating, so that a change in the machine's load hits both
                for name, (sample, decode) in (list(runs.items())[::-1] if r % 2 else runs.items()):
                    toks, t_s = best_of(sample, 1)
                    _, t_d = best_of(lambda: decode(toks), 1)
                    best[name] = (min(best[name][0], t_s), min(best[name][1], t_d))
            results[(mode, b)] = best
            for name, (t_s, t_d) in best.items():
                print(f"  {name:22s} batch {b}: tokens {t_s:7.2f} s ({b * args.tokens / t_s:6.1f} tokens/s), "
                      f"decode {t_d:6.2f} s, {b / (t_s + t_d):.4f} images/s", flush=True)
        del pipe
        gc.collect()
    print("ratios (argen / transformers):")
    for (_mode, b), best in results.items():
        (hs, hd), (as_, ad) = best.values()
        print(f"  {' vs '.join(list(best)[::-1])} batch {b}: {hs / as_:.2f}x token sampling, {(hs + hd) / (as_ + ad):.2f}x images/s")
    tmp.cleanup()


if __name__ == "__main__":
    main()
