"""Mesh generation speed and sequence length, measured in one process so the ratios compare
like with like.

    python bench/mesh_generate.py [--model shapes3d-mesh] [--n 8] [--threads 1]
    python bench/mesh_generate.py --meshxl [--layers 4] [--faces 24] [--depth 300] [--threads 2]
        [--modes float32 bfloat16 int8] [--hf-dtypes float32 bfloat16]

Prints faces/s with and without the KV cache (same prompts, same seeds, so the same meshes),
and tokens per face of the held-out shapes3d meshes with plain and with adjacent (MeshAnything
V2) tokenisation.

``--meshxl``: faces/s of argen's engine against transformers' ``generate`` on the same random
``OPTForCausalLM`` at MeshXL-350m's width (d_model 1024, 16 heads, FFN 4096, 131 tokens, 8192
positions; ``--layers`` of its 24), batch 1 and 8, MeshXL's sampling (top-k 50, top-p 0.95),
EOS held back on both sides so every row writes ``--faces`` faces; argen also with its
MeshXL constraint on. argen's modes (``--modes``): float32, bfloat16 (``--dtype bfloat16``) and
int8 (``--quantize int8``: int8 weights, bfloat16 activations); transformers' baselines
(``--hf-dtypes``): float32 and bfloat16, copies of the same weights. ``speedup*`` keys compare
argen float32 with transformers float32; ``vs_transformers_<dtype>`` every mode with every baseline.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from argen.engine.sampling.rules import token_rules
from argen.lab.data import shapes3d
from argen.modalities.mesh.pipeline import MeshPipeline
from argen.modalities.mesh.tokenizer import canonical, tokenize


def faces_per_second(pipe: MeshPipeline, n: int, use_cache: bool, max_faces: int) -> tuple[float, list]:
    prompts = [s.caption for s in shapes3d.generate(0, "val", n)]
    t0 = time.perf_counter()
    from argen.modalities.base import Row
    from argen.modalities.mesh.spec import MeshSpec

    pipe.use_cache = use_cache
    outs = list(pipe.generate(MeshSpec(max_faces=max_faces, batch_size=n), [Row(i, p, i) for i, p in enumerate(prompts)]))
    seconds = time.perf_counter() - t0
    return sum(len(o.mesh.faces) for o in outs) / seconds, outs


def tokens_per_face(n: int) -> dict[str, float]:
    samples = shapes3d.generate(0, "val", n)
    plain = sum(len(tokenize(s.mesh, False)) for s in samples)
    adjacent = sum(len(tokenize(s.mesh, True)) for s in samples)
    faces = sum(len(canonical(s.mesh)[1]) for s in samples)
    return {"meshes": n, "faces": faces, "plain": round(plain / faces, 3), "adjacent": round(adjacent / faces, 3),
            "adjacent_over_plain": round(adjacent / plain, 3)}


def meshxl_vs_transformers(layers: int, faces: int, depth: int, batches: tuple[int, ...] = (1, 8),
                           repeats: int = 2, modes: tuple[str, ...] = ("float32",),
                           hf_dtypes: tuple[str, ...] = ("float32",)) -> dict:
    """faces/s of argen and of transformers on one random OPT in MeshXL's layout: writing the
    first ``faces`` faces from BOS, and decoding 8 faces after a ``depth``-face prefix (decode
    time only: a run of 1 new token is subtracted, which removes the prefill)."""
    import copy

    import transformers

    from argen.engine.quantize import quantize_weights
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.mesh.meshxl import tokenizer as tok
    from argen.modalities.mesh.meshxl.constraint import MeshXLConstraint
    from argen.modalities.mesh.meshxl.convert import load_opt

    torch.manual_seed(0)
    cfg = transformers.OPTConfig(vocab_size=tok.VOCAB, hidden_size=1024, num_attention_heads=16, ffn_dim=4096,
                                 num_hidden_layers=layers, max_position_embeddings=8192, word_embed_proj_dim=1024,
                                 do_layer_norm_before=True, activation_function="relu", bos_token_id=tok.BOS,
                                 eos_token_id=tok.EOS, pad_token_id=tok.PAD)
    hf = transformers.OPTForCausalLM(cfg).eval()
    model, _ = load_opt(cfg.to_dict(), hf.state_dict(), "bench")
    # argen's modes and transformers' baselines, each a copy of the same weights
    ours = {m: model if m == "float32" else quantize_weights(copy.deepcopy(model).to(torch.bfloat16),
                                                             "int8" if m == "int8" else "none") for m in modes}
    theirs = {d: hf if d == "float32" else copy.deepcopy(hf).to(torch.bfloat16) for d in hf_dtypes}
    sampling = SamplingConfig(temperature=1.0, top_k=50, top_p=0.95)

    def no_eos(constraint):
        def allowed(step, outputs):
            ok = constraint(step, outputs) if constraint else torch.ones(len(outputs), tok.VOCAB, dtype=torch.bool)
            held = ok.clone()
            held[:, tok.EOS] = False
            return torch.where(held.any(1, keepdim=True), held, ok)  # EOS only when nothing else fits
        return allowed

    def run_argen(prompt: list[int], b: int, n: int, constrained: bool = False, mode: str = "float32") -> float:
        gens = [torch.Generator().manual_seed(i) for i in range(b)]
        allowed = no_eos(MeshXLConstraint(b, n // tok.PER_FACE, n + 1) if constrained else None)
        t0 = time.perf_counter()
        out = generate(ours[mode], [prompt] * b, n, sampling, generators=gens, rules=token_rules(allowed=allowed))
        assert all(len(o) == n for o in out)
        return time.perf_counter() - t0

    def run_hf(prompt: list[int], b: int, n: int, dtype: str = "float32") -> float:
        torch.manual_seed(0)
        ids = torch.tensor([prompt] * b)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = theirs[dtype].generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=50, top_p=0.95,
                              max_new_tokens=n, min_new_tokens=n, eos_token_id=tok.EOS, pad_token_id=tok.PAD)
        assert out.shape[1] == len(prompt) + n
        return time.perf_counter() - t0

    def best(fn, *args, times: int = repeats) -> float:
        return min(fn(*args) for _ in range(times))

    start = [tok.BOS]
    g = torch.Generator().manual_seed(1)
    deep = [tok.BOS] + torch.randint(0, tok.LEVELS, (tok.PER_FACE * depth,), generator=g).tolist()
    n, m = tok.PER_FACE * faces, tok.PER_FACE * 8 + 1
    for mode in ours:
        run_argen(start, 1, 9, mode=mode)  # warm-up
    for d in theirs:
        run_hf(start, 1, 9, dtype=d)
    report = {"width": 1024, "layers": layers, "of_layers": 24, "threads": torch.get_num_threads(),
              "start": f"faces 1..{faces} from BOS", "deep": f"8 faces after {depth} (decode only)"}
    report["modes"], report["hf_dtypes"] = list(modes), list(hf_dtypes)
    for b in batches:
        fps: dict[str, float] = {}
        for d in theirs:
            name = "transformers" if d == "float32" else f"transformers_{d}"
            fps[name] = b * faces / best(run_hf, start, b, n, d)
            deep_hf = best(run_hf, deep, b, m, d, times=1) - best(run_hf, deep, b, 1, d, times=1)  # prefills: once
            fps[f"deep_{name}"] = b * 8 / deep_hf
        for mode in ours:
            name = "argen" if mode == "float32" else f"argen_{mode}"
            fps[name] = b * faces / best(run_argen, start, b, n, False, mode)
            fps[f"{name}_constrained"] = b * faces / best(run_argen, start, b, n, True, mode)
            deep_ar = best(run_argen, deep, b, m, False, mode, times=1) - best(run_argen, deep, b, 1, False, mode, times=1)
            fps[f"deep_{name}"] = b * 8 / deep_ar
        row = {f"faces_per_s_{k}": round(v, 2) for k, v in fps.items()}
        if "argen" in fps and "transformers" in fps:
            row.update(speedup=round(fps["argen"] / fps["transformers"], 2),
                       speedup_constrained=round(fps["argen_constrained"] / fps["transformers"], 2),
                       speedup_deep=round(fps["deep_argen"] / fps["deep_transformers"], 2))
        for d in theirs:
            base = "transformers" if d == "float32" else f"transformers_{d}"
            row[f"vs_transformers_{d}"] = {
                mode: {"start": round(fps[a] / fps[base], 2), "deep": round(fps[f"deep_{a}"] / fps[f"deep_{base}"], 2)}
                for mode, a in ((mode, "argen" if mode == "float32" else f"argen_{mode}") for mode in ours)}
        report[f"batch_{b}"] = row
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="mesh model name or folder (default: the bundled one)")
    ap.add_argument("--n", type=int, default=8, help="meshes per run (one batch)")
    ap.add_argument("--max-faces", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--meshxl", action="store_true", help="argen vs transformers on a random MeshXL-350m-wide OPT")
    ap.add_argument("--layers", type=int, default=4, help="--meshxl: layers of the 24 to keep")
    ap.add_argument("--faces", type=int, default=24, help="--meshxl: faces each row writes from BOS")
    ap.add_argument("--depth", type=int, default=300, help="--meshxl: faces already written for the deep case")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="--meshxl: batch sizes")
    ap.add_argument("--repeats", type=int, default=2, help="--meshxl: best of this many runs")
    ap.add_argument("--modes", nargs="+", default=["float32", "bfloat16", "int8"], choices=["float32", "bfloat16", "int8"],
                    help="--meshxl: argen's modes (int8: int8 weights, bfloat16 activations)")
    ap.add_argument("--hf-dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                    help="--meshxl: transformers' baselines")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.meshxl:
        report = meshxl_vs_transformers(args.layers, args.faces, args.depth, tuple(args.batches), args.repeats,
                                        tuple(args.modes), tuple(args.hf_dtypes))
        print(json.dumps(report) if args.json else json.dumps(report, indent=2))
        return
    pipe = MeshPipeline.from_pretrained(args.model, device="cpu")
    faces_per_second(pipe, 2, True, 20)  # warm-up
    cached, a = faces_per_second(pipe, args.n, True, args.max_faces)
    uncached, b = faces_per_second(pipe, args.n, False, args.max_faces)
    same = all(x.tokens == y.tokens for x, y in zip(a, b))
    report = {"model": pipe.name, "threads": args.threads, "n": args.n,
              "faces_per_s_cache": round(cached, 2), "faces_per_s_no_cache": round(uncached, 2),
              "cache_speedup": round(cached / uncached, 2), "same_meshes": same,
              "tokens_per_face": tokens_per_face(200)}
    if args.json:
        print(json.dumps(report))
        return
    t = report["tokens_per_face"]
    print(f"faces/s with KV cache     {cached:8.2f}")
    print(f"faces/s without KV cache  {uncached:8.2f}   (cache speed-up x{cached / uncached:.2f}; same meshes: {same})")
    print(f"tokens/face plain         {t['plain']:8.3f}")
    print(f"tokens/face adjacent      {t['adjacent']:8.3f}   (adjacent/plain {t['adjacent_over_plain']:.3f}, "
          f"over {t['meshes']} held-out meshes, {t['faces']} faces)")


if __name__ == "__main__":
    main()
