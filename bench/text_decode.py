"""Text decoding speed, measured in one process on the same weights.

1. argen vs transformers ``generate()``: a ~10M-parameter Llama (random weights, built with
   transformers, saved, loaded by argen), batch 1, greedy. argen in float32 (its outputs must
   equal transformers') and with ``--quantize int8`` (int8 weights, bf16 activations).
2. argen with the KV cache vs without it (full recompute per token) at 512 new tokens.
3. speculative decoding on the bundled shakespeare-char model: with the bundled draft model and
   with prompt lookup, against plain sampling at the same settings; acceptance rates.

Run: ``python bench/text_decode.py [--quick]``. Prints ratios; targets in the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def race(fns: dict, repeats: int) -> dict:
    """Best time of each function over ``repeats`` rounds, run in turn so that a noisy machine
    slows them alike; returns {name: (seconds, output)}."""
    results = {name: (float("inf"), None) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, out = timed(fn)
            if t < results[name][0]:
                results[name] = (t, out)
    return results


def llama_10m(folder: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=4096, hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=2048)
    LlamaForCausalLM(cfg).eval().save_pretrained(folder, safe_serialization=True)


def bench_vs_transformers(new_tokens: int, repeats: int) -> None:
    from transformers import LlamaForCausalLM

    from argen.checkpoints.hf_convert import load_hf_folder
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig

    with tempfile.TemporaryDirectory() as d:
        llama_10m(d)
        ref = LlamaForCausalLM.from_pretrained(d).eval()
        ours, _ = load_hf_folder(d)
    n_params = sum(p.numel() for p in ours.parameters())
    prompt = torch.randint(4096, (1, 32), generator=torch.Generator().manual_seed(1))
    greedy = SamplingConfig(temperature=0)

    def hf():
        with torch.inference_mode():
            out = ref.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=0, eos_token_id=None)
        return out[0, prompt.shape[1]:].tolist()

    from argen.engine.quantize import quantize_int8

    with tempfile.TemporaryDirectory() as d:
        llama_10m(d)
        q8 = quantize_int8(load_hf_folder(d)[0].to(torch.bfloat16))
    fns = {"transformers generate() fp32": hf,
           "argen generate() fp32": lambda: generate(ours, prompt.tolist(), new_tokens, greedy)[0],
           "argen generate() int8": lambda: generate(q8, prompt.tolist(), new_tokens, greedy)[0]}
    for fn in fns.values():
        fn()  # warm-up
    res = race(fns, repeats)
    t_hf, out_hf = res["transformers generate() fp32"]
    print(f"[1] Llama {n_params / 1e6:.1f}M params, batch 1, greedy, {new_tokens} new tokens")
    for name, (t, out) in res.items():
        agree = next((i for i, (a, b) in enumerate(zip(out, out_hf)) if a != b), len(out))
        print(f"    {name:30s} {new_tokens / t:8.1f} tokens/s  {t_hf / t:5.2f}x  "
              f"(same tokens as transformers: {agree}/{len(out)})")
    print("    target: argen >= 2x transformers")

    def cached():
        return generate(ours, prompt.tolist(), 512, greedy)[0]

    def uncached():
        return generate(ours, prompt.tolist(), 512, greedy, use_cache=False)[0]

    res = race({"cached": cached, "uncached": uncached}, 1)
    (t_c, out_c), (t_u, out_u) = res["cached"], res["uncached"]
    print(f"[2] 512 new tokens: cached {512 / t_c:.1f} tokens/s, uncached {512 / t_u:.1f} tokens/s")
    print(f"    speed-up: {t_u / t_c:.2f}x (target >= 5x); identical tokens: {out_c == out_u}")


def bench_speculative(new_tokens: int, repeats: int) -> None:
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.text.pipeline import TextPipeline

    pipe = TextPipeline.from_pretrained("shakespeare-char", device="cpu")
    prompt = "ROMEO:\nWhat light through yonder window breaks? It is the east, and Juliet is the sun.\n"
    print(f"[3] speculative decoding, shakespeare-char target, {new_tokens} new tokens, batch 1")
    for label, sampling in (("greedy", SamplingConfig(temperature=0)), ("temperature 0.8", SamplingConfig(temperature=0.8))):
        def run(**kw):
            return pipe(prompt, max_new_tokens=new_tokens, temperature=sampling.temperature, seed=0, **kw)[0]

        fns = {"plain": run, "draft model": lambda: run(draft="shakespeare-char-draft"), "lookup 3": lambda: run(lookup=3)}
        for fn in fns.values():
            fn()
        res = race(fns, repeats)
        t_plain, plain = res.pop("plain")
        line = f"    {label:16s} plain {new_tokens / t_plain:7.1f} tokens/s"
        for name, (t_spec, spec) in res.items():
            line += (f" | {name}: {new_tokens / t_spec:7.1f} tokens/s, {t_plain / t_spec:.2f}x, "
                     f"acceptance {spec.speculative.acceptance_rate:.0%}")
            if sampling.greedy and spec.text != plain.text:
                line += " (MISMATCH with greedy!)"
        print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer tokens and repeats")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_vs_transformers(64 if args.quick else 256, 1 if args.quick else 3)
    bench_speculative(100 if args.quick else 150, 1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
