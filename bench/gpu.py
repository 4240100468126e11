"""GPU throughput of argen's decoders, eager vs compiled, on random weights (prepared on CPU; see
docs/benchmarks.md for the numbers measured so far: none yet on a GPU).

Rows (``--sizes full``, meant for one CUDA device, about 8 minutes in all):
- text: a Llama of 1B size (Llama-3.2-1B's shape: 16 layers, d 2048, 32 heads, 8 KV heads, FFN
  8192, vocabulary 128256, tied embeddings), bf16, batch 1 and 8, 128 prompt + 256 new tokens,
  temperature 0.8 and top-k 50 (on CUDA with ``--compile`` the fused Triton sampler runs);
- llamagen-gpt-b-256: LlamaGen GPT-B (256x256, 16x16 tokens), batch 8, CFG 2.0 (16 rows);
- musicgen-small shape: the decoder (24 layers, d 1024, 4 codebook streams of 2048) reading a
  cross-attention memory of 16 text states, batch 4, CFG 3.0 (8 rows), 5 s (250 steps): the
  audio family's graph path, with the memory a static input of the captured step;
- var-d16: VAR d16 with its VQ-VAE, batch 8, CFG (images/s of the codes, no decoding);
- video block: one block of block diffusion (recipes/train/video-bouncing.yaml's DiT), batch 8.

Modes: ``eager``; ``compiled`` (the decode step under torch.compile with dynamic shapes, the
fused sampler on CUDA, no CUDA graphs); ``graphs`` (what ``--compile`` does on CUDA: a static KV
cache and the decode step captured as a CUDA graph, plus the fused sampler; n/a off CUDA). VAR and
the video block are not next-token decoders: argen refuses --compile for them (n/a).
For batch-1 text decode the table adds the achieved memory bandwidth: bytes read per step (every
weight once, bf16, plus the KV cache at its mean length) times steps/s, as a share of the
device's peak (a table of known parts, or ``--peak-gbps``).

Run: ``python bench/gpu.py`` on a CUDA machine; ``python bench/gpu.py --dry-run`` runs every row
at tiny sizes on the CPU (what tests/test_bench_gpu.py does) to check the script itself.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

# HBM bandwidth in GB/s from the vendors' data sheets (NVIDIA H100/H200/A100/L4 product pages)
PEAK_GBPS = {"H200": 4800, "H100 PCIe": 2000, "H100 NVL": 3900, "H100": 3350, "A100-SXM4-80GB": 2039,
             "A100 80GB PCIe": 1935, "A100": 1555, "L40S": 864, "L4": 300}

SIZES = {
    "full": dict(text=dict(vocab_size=128256, n_layer=16, d_model=2048, n_head=32, n_kv_head=8, d_ff=8192,
                           max_seq_len=1024, tie_embeddings=True, rope_theta=500000.0),
                 prompt=128, new_tokens=256, batches=(1, 8), image_batch=8, llamagen=None, var_depth=16, video_steps=20,
                 musicgen=dict(d_model=1024, n_layer=24, n_head=16, d_ff=4096, batch=4, steps=250, text_states=16)),
    "tiny": dict(text=dict(vocab_size=256, n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ff=128, max_seq_len=64),
                 prompt=8, new_tokens=8, batches=(1, 2), image_batch=2, llamagen=(2, 2, 64), var_depth=None, video_steps=2,
                 musicgen=dict(d_model=32, n_layer=2, n_head=4, d_ff=64, batch=2, steps=4, text_states=3)),
}
MODES = ("eager", "compiled", "graphs")


def peak_gbps(device_name: str, override: float | None) -> float | None:
    """The device's peak memory bandwidth (GB/s): ``override``, else the first known part whose
    name occurs in ``device_name`` (longest names first, so "H100 PCIe" wins over "H100")."""
    if override:
        return override
    for part in sorted(PEAK_GBPS, key=len, reverse=True):
        if part.lower() in device_name.lower():
            return PEAK_GBPS[part]
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    """Seconds of one call after a warm-up call (compilation, autotuning, first-call costs)."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


@contextlib.contextmanager
def mode_rule(mode: str):
    """The next-token loop with ``mode``'s decode step: ``compiled`` turns the graph rule off."""
    from argen.engine.sampling import next_token

    rule = next_token.use_graphs
    if mode == "compiled":
        next_token.use_graphs = lambda *a: False
    try:
        yield mode != "eager"  # the loop's compile flag
    finally:
        next_token.use_graphs = rule


def decode_bytes(model, mean_len: float) -> float:
    """Bytes one batch-1 decode step reads: every weight once (the embedding table only when tied,
    as the head then reads it whole) plus the KV cache at ``mean_len`` positions."""
    c = model.cfg
    params = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if n != "embed.weight")
    if c.tie_embeddings:
        params += model.embed.weight.numel() * model.embed.weight.element_size()
    kv = 2 * c.n_layer * c.n_kv_head * c.head_dim * mean_len * model.embed.weight.element_size()
    return params + kv


def text_rows(size: dict, device: torch.device, dtype: torch.dtype, peak: float | None) -> list[tuple]:
    from argen.engine.config import TransformerConfig
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig
    from argen.engine.transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**size["text"])).to(device, dtype).eval()
    sampling = SamplingConfig(temperature=0.8, top_k=50)
    new, plen = size["new_tokens"], size["prompt"]
    rows = []
    for batch in size["batches"]:
        prompts = [[(7 * i + j) % model.cfg.vocab_size for j in range(plen)] for i in range(batch)]
        for mode in MODES:
            if mode == "graphs" and device.type != "cuda":
                rows.append((f"text 1B-shape b{batch}", mode, None, "tokens/s", None))
                continue
            with mode_rule(mode) as compile:
                def run(p=prompts, c=compile, n=new):
                    return generate(model, p, n, sampling, seed=0, compile=c)

                t_all = timed(run, device)
                t_prefill = timed(lambda: run(n=1), device)
            share = None
            if batch == 1 and peak and t_all > t_prefill:
                steps = (new - 1) / (t_all - t_prefill)  # decode steps/s, the prefill taken out
                share = decode_bytes(model, plen + new / 2) * steps / (peak * 1e9)
            # throughput end to end (prefill included: 128 prompt tokens against 256 decode steps)
            rows.append((f"text 1B-shape b{batch}", mode, batch * new / t_all, "tokens/s", share))
    return rows


def llamagen_rows(size: dict, device: torch.device, dtype: torch.dtype) -> list[tuple]:
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig
    from argen.engine.sampling.rules import token_rules
    from argen.engine.transformer import Transformer
    from argen.modalities.image.llamagen.gpt import llamagen_config
    from argen.modalities.image.llamagen.sampling import class_prompts

    torch.manual_seed(0)
    cfg = llamagen_config("gpt-b", 256) if size["llamagen"] is None else llamagen_config(
        "tiny", 64, size=size["llamagen"], vocab_size=64, num_classes=10)
    gpt = Transformer(cfg).to(device, dtype).eval()
    b = size["image_batch"]
    prompts, uncond = class_prompts(gpt, list(range(b)))
    sampling = SamplingConfig(temperature=1.0, cfg_scale=2.0)
    n = cfg.rope_grid ** 2
    rows = []
    for mode in MODES:
        if mode == "graphs" and device.type != "cuda":
            rows.append((f"llamagen-gpt-b-256 b{b}", mode, None, "images/s", None))
            continue
        with mode_rule(mode) as compile:
            t = timed(lambda c=compile: generate(gpt, prompts, n, sampling, seed=0, compile=c,
                                                 rules=token_rules(uncond_prompts=uncond)), device)
        rows.append((f"llamagen-gpt-b-256 b{b}", mode, b / t, "images/s", None))
    return rows


def musicgen_rows(size: dict, device: torch.device, dtype: torch.dtype) -> list[tuple]:
    from argen.engine.sampling.conditioning import Conditioning
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig
    from argen.engine.sampling.rules import token_rules
    from argen.engine.transformer import Transformer
    from argen.modalities.audio.musicgen.config import MusicGenSpec

    m = size["musicgen"]
    spec = MusicGenSpec(family="musicgen", d_model=m["d_model"], n_layer=m["n_layer"], n_head=m["n_head"],
                        d_ff=m["d_ff"], mlp="gelu", max_positions=2048, n_codebooks=4, channels=1,
                        codebook_size=2048, text_dim=768, sample_rate=32000, hop=640)
    torch.manual_seed(0)
    model = Transformer(spec.transformer_config()).to(device, dtype).eval()
    b, k = m["batch"], spec.n_codebooks
    prompts = [[(spec.pad,) * k] for _ in range(b)]  # every stream starts at BOS (= PAD)
    states = torch.randn(2 * b, m["text_states"], spec.d_model, device=device, dtype=dtype)
    condition = Conditioning(memory=model.memory(states))  # prompts' rows, then their CFG twins
    sampling = SamplingConfig(temperature=1.0, top_k=250, cfg_scale=3.0)
    name = f"musicgen-small shape b{b} ({m['steps']} steps)"
    rows = []
    for mode in MODES:
        if mode == "graphs" and device.type != "cuda":
            rows.append((name, mode, None, "steps/s", None))
            continue
        with mode_rule(mode) as compile:
            t = timed(lambda c=compile: generate(model, prompts, m["steps"], sampling, seed=0, compile=c,
                                                 condition=condition,
                                                 rules=token_rules(vocab_limit=spec.codebook_size,
                                                                   uncond_prompts=prompts)), device)
        rows.append((name, mode, m["steps"] / t, "steps/s", None))
    return rows


def var_rows(size: dict, device: torch.device, dtype: torch.dtype) -> list[tuple]:
    from argen.modalities.image.var.model import VAR, VARConfig, var_config
    from argen.modalities.image.var.sampling import sample_var_codes
    from argen.modalities.image.var.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    if size["var_depth"]:
        vae, var = VQVAE(), VAR(var_config(size["var_depth"]))
    else:
        scales = [1, 2, 4]
        vae = VQVAE(VQVAEConfig(vocab_size=64, z_channels=8, ch=32, ch_mult=[1, 2], num_res_blocks=1, patch_nums=scales))
        var = VAR(VARConfig(depth=2, width=64, num_heads=4, num_classes=10, vocab_size=64, vae_channels=8,
                            patch_nums=scales))
    vae, var = vae.to(device).eval(), var.to(device, dtype).eval()
    b = size["image_batch"]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        t = timed(lambda: sample_var_codes(vae, var, list(range(b)), seed=0), device)
    return [(f"var-d{size['var_depth'] or 2} b{b}", "eager", b / t, "images/s", None),
            (f"var-d{size['var_depth'] or 2} b{b}", "compiled", None, "images/s", None),
            (f"var-d{size['var_depth'] or 2} b{b}", "graphs", None, "images/s", None)]


def video_rows(size: dict, device: torch.device, dtype: torch.dtype) -> list[tuple]:
    from pathlib import Path

    import yaml

    from argen.engine.sampling.block_diffusion import extend
    from argen.modalities.video.dit import VideoDiT, VideoModelConfig
    from argen.modalities.video.text import CaptionVocab

    recipe = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "recipes/train/video-bouncing.yaml"))
    torch.manual_seed(0)
    model = VideoDiT(VideoModelConfig(text_vocab=len(CaptionVocab()), **recipe["model"])).to(device, dtype).eval()
    b, fb = size["image_batch"], model.cfg.block_frames
    text = CaptionVocab().encode_batch(["a red circle and a blue square"] * b).to(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        t = timed(lambda: extend(model, text, None, fb, steps=size["video_steps"],
                                 generator=torch.Generator(device).manual_seed(0)), device)
    name = f"video block ({fb} frames, {size['video_steps']} steps) b{b}"
    return [(name, "eager", b * fb / t, "frames/s", None), (name, "compiled", None, "frames/s", None),
            (name, "graphs", None, "frames/s", None)]


def table(rows: list[tuple]) -> str:
    """A markdown table: one line per (row, mode); n/a where a mode does not exist yet."""
    out = ["| workload | mode | throughput | unit | share of peak bandwidth |", "|---|---|---|---|---|"]
    for name, mode, value, unit, share in rows:
        v = "n/a" if value is None else f"{value:.2f}"
        s = "" if share is None else f"{share * 100:.1f}%"
        out.append(f"| {name} | {mode} | {v} | {unit} | {s} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes, float32, on the CPU: checks the script")
    ap.add_argument("--only", choices=["text", "llamagen", "musicgen", "var", "video"], action="append",
                    help="run only these rows (repeatable)")
    ap.add_argument("--peak-gbps", type=float, default=None, help="the device's peak memory bandwidth, GB/s")
    args = ap.parse_args(argv)
    if args.dry_run:
        device, dtype, size = torch.device("cpu"), torch.float32, SIZES["tiny"]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench/gpu.py needs a CUDA device (use --dry-run to check it on a CPU)")
        device, dtype, size = torch.device("cuda"), torch.bfloat16, SIZES["full"]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run)"
    peak = peak_gbps(name, args.peak_gbps)
    print(f"{name}, torch {torch.__version__}, peak bandwidth {peak or 'unknown'} GB/s", flush=True)
    rows: list[tuple] = []
    only = set(args.only or ["text", "llamagen", "musicgen", "var", "video"])
    with torch.inference_mode():
        if "text" in only:
            rows += text_rows(size, device, dtype, peak)
        if "llamagen" in only:
            rows += llamagen_rows(size, device, dtype)
        if "musicgen" in only:
            rows += musicgen_rows(size, device, dtype)
        if "var" in only:
            rows += var_rows(size, device, dtype)
        if "video" in only:
            rows += video_rows(size, device, dtype)
    out = table(rows)
    print(out)
    return out


if __name__ == "__main__":
    main()
