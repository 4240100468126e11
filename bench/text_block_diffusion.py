"""Block-diffusion decoding against next-token decoding of the same weights, batch 1, greedy.

The model is Fast-dLLM v2's layout (Efficient-Large-Model/Fast_dLLM_v2_1.5B: Qwen2.5-1.5B's width,
hidden 1536, 12 heads over 2 key/value heads, MLP 8960, vocabulary 151936, tied head; blocks of 32,
sub-blocks of 8, token shift) with random weights and its 28 layers cut to ``--layers`` so that it
fits a shared CPU. The next-token run uses the very same weights with plain causal attention.

Random weights have no idea what comes next, so how many tokens a threshold lets through per pass
is set by how peaked the head is (``--head-scale`` multiplies it; the confidences it gives are
printed). The engine's part of the speed-up is the cost of a block pass (the 32-token block, plus
the finished block once) against a one-token pass: the break-even tokens per pass printed below.
The paper reports about 2.5x end to end on GPUs with the trained model.

Run: ``python bench/text_block_diffusion.py [--layers 2] [--new 128] [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch

QWEN25_15B = dict(model_type="Fast_dLLM_Qwen", vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                  num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bd_size=32)


def build(layers: int, head_scale: float, dtype: torch.dtype = torch.float32):
    from argen.engine.transformer import Transformer
    from argen.modalities.text.block_diffusion.model import BlockDiffusionModel
    from argen.modalities.text.fast_dllm.model import MASK_ID, fast_dllm_config

    cfg = fast_dllm_config({**QWEN25_15B, "num_hidden_layers": layers})
    cfg = dataclasses.replace(cfg, max_seq_len=4096)
    torch.manual_seed(0)
    with torch.no_grad():
        net = Transformer(cfg).eval()
        net.norm.weight.mul_(head_scale)  # the final norm feeds only the (tied) head: peaked logits
        net.to(dtype)
    ar = copy.copy(net)  # the same parameters and buffers, plain causal attention
    ar.cfg = dataclasses.replace(cfg, block_size=1)
    bd = BlockDiffusionModel(net=net, family="fast-dllm-v2", mask_id=MASK_ID, block_size=cfg.block_size,
                             token_shift=True, max_len=cfg.max_seq_len)
    return ar, bd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--new", type=int, default=128, help="new tokens")
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    ap.add_argument("--head-scale", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="the weights' and activations' dtype, the same for both decoders")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from argen.engine.sampling.masked_block import BlockSettings, generate_blocks
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig

    ar, bd = build(args.layers, args.head_scale, getattr(torch, args.dtype))
    greedy = SamplingConfig(temperature=0.0)
    prompt = torch.randint(0, 151000, (args.prompt,), generator=torch.Generator().manual_seed(1)).tolist()
    n_params = sum(p.numel() for p in bd.net.parameters())
    print(f"Fast-dLLM v2 layout at Qwen2.5-1.5B's width, random weights, {args.layers} of 28 layers "
          f"({n_params / 1e6:.0f}M parameters), {args.dtype}, {torch.get_num_threads()} threads; batch 1, greedy, "
          f"{args.prompt}-token prompt, {args.new} new tokens; head scaled x{args.head_scale}")

    def ar_run():
        return generate(ar, [prompt], args.new, greedy)

    runs = {"next-token": ar_run}
    for th in (0.9, 0.7):
        settings = BlockSettings(32, threshold=th, sub_block=8)
        runs[f"block diffusion, threshold {th}"] = (lambda s=settings: generate_blocks(bd, [prompt], args.new, s, greedy))
    best = {name: float("inf") for name in runs}
    outs = {}
    for _ in range(args.repeats):  # in turn, so that a busy machine slows every run alike
        for name, fn in runs.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    ar_tps = args.new / best["next-token"]
    print(f"{'decoder':34s} {'tokens/s':>9s} {'tokens/pass':>11s} {'vs next-token':>13s}")
    print(f"{'next-token':34s} {ar_tps:9.2f} {1.0:11.2f} {1.0:12.2f}x")
    for name in runs:
        if name == "next-token":
            continue
        tokens, passes = outs[name]
        tps = args.new / best[name]
        print(f"{name:34s} {tps:9.2f} {len(tokens[0]) / passes[0]:11.2f} {tps / ar_tps:12.2f}x")
    # the engine's share: a pass over a 32-token block against a one-token pass, both after 64 cached tokens
    cache = bd.new_cache(1, 4096)
    with torch.inference_mode():
        bd.net(torch.tensor([prompt[:64]]), pos=torch.arange(64)[None], cache=cache)
        t0 = time.perf_counter()
        for _ in range(5):
            bd.net(torch.tensor([prompt[:32]]), pos=torch.arange(64, 96)[None], cache=cache)
            cache.truncate(64)
        block_pass = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        for i in range(5):
            ar(torch.tensor([[prompt[i]]]), pos=torch.tensor([[64]]), cache=cache)
            cache.truncate(64)
        token_pass = (time.perf_counter() - t0) / 5
    print(f"a 32-token block pass costs {block_pass / token_pass:.2f} one-token passes "
          f"({block_pass * 1e3:.0f} ms vs {token_pass * 1e3:.0f} ms): the break-even tokens per pass")


if __name__ == "__main__":
    main()
