"""Crystal sampling speed: structures per second of argen's batched sampler against CrystaLLM's
own sampling loop on the same weights, measured in one process.

CrystaLLM's loop (lantunes/CrystaLLM crystallm/_model.py ``GPT.generate``, driven by
bin/generate_cifs.py one prompt at a time and one generation after another): every step runs
the model over the whole sequence so far (cropped to the last ``block_size`` tokens; no KV
cache) and reads the last position's logits, divides them by the temperature, keeps the top k,
takes ``torch.multinomial`` of their softmax, appends the token, and stops at two newlines in a
row. That arithmetic is written out below on argen's Transformer (whose forward equals
nanoGPT's: tests/test_crystal_convert.py). argen: ``CrystalPipeline.sample_many``, every sample
of every composition in batches through the KV cache, finished rows leaving the batch.

Both start from CrystaLLM's benchmark prompt (``data_<cell composition>``) of the first
compositions of the split, with the model's default sampling.

Run: ``python bench/crystal_sample.py [--model NAME|DIR] [--split CSV] [--compositions K] [-n N]
[--baseline-samples M] [--threads T]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F


@torch.inference_mode()
def crystallm_generate(model, ids: list[int], max_new_tokens: int, temperature: float, top_k: int | None,
                       newline: int) -> list[int]:
    """CrystaLLM's GPT.generate for one prompt (batch 1), on argen's model."""
    block = model.cfg.max_seq_len
    idx = torch.tensor([ids])
    prev = None
    for _ in range(max_new_tokens):
        cond = idx if idx.size(1) <= block else idx[:, -block:]
        logits = model(cond, num_logits=1)[:, -1, :] / temperature  # positions 0..len(cond)-1
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = -float("inf")
        nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
        idx = torch.cat((idx, nxt), dim=1)
        if prev is not None and prev == newline and nxt.item() == newline:
            break
        prev = nxt.item()
    return idx[0, len(ids):].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--split", default="../shared/data/crystal/perov_5/test.csv")
    ap.add_argument("--compositions", type=int, default=8, help="compositions for argen's batched run")
    ap.add_argument("-n", type=int, default=20, help="samples per composition")
    ap.add_argument("--baseline-samples", type=int, default=6, help="samples CrystaLLM's loop draws (it is slow)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: up to the model's context")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from argen.modalities.crystal.cif_text import cif_to_text, prompt_of_text, read_split
    from argen.modalities.crystal.pipeline import CrystalPipeline

    pipe = CrystalPipeline.from_pretrained(args.model, device="cpu")
    sampling = pipe.sampling(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompts = [prompt_of_text(cif_to_text(r.cif)) for r in read_split(args.split, args.compositions)]
    cap = args.max_new_tokens or pipe.model.cfg.max_seq_len
    print(f"{pipe.name}: torch {torch.__version__}, {torch.get_num_threads()} threads, temperature "
          f"{sampling.temperature:g}, top-k {sampling.top_k}, context {pipe.model.cfg.max_seq_len}")

    # CrystaLLM's loop: one composition at a time, one sample after another
    nl = pipe.tokenizer.newline_id
    torch.manual_seed(1337)  # bin/generate_cifs.py's default seed
    t0 = time.perf_counter()
    tokens = 0
    for i in range(args.baseline_samples):
        ids = pipe.tokenizer.encode(prompts[(i // args.n) % len(prompts)])
        tokens += len(crystallm_generate(pipe.model, ids, max(1, min(cap, pipe.model.cfg.max_seq_len) - len(ids)),
                                         sampling.temperature, sampling.top_k, nl))
    base = time.perf_counter() - t0
    base_rate = args.baseline_samples / base
    print(f"CrystaLLM's loop : {args.baseline_samples} structures, {tokens} tokens in {base:.1f} s: "
          f"{base_rate:.3f} structures/s")

    rows = [p for p in prompts for _ in range(args.n)]
    t0 = time.perf_counter()
    outs = pipe.sample_ids(rows, list(range(len(rows))), sampling, args.max_new_tokens)
    ours = time.perf_counter() - t0
    rate = len(rows) / ours
    print(f"argen batched    : {len(rows)} structures, {sum(map(len, outs))} tokens in {ours:.1f} s: "
          f"{rate:.3f} structures/s")
    print(f"speed-up: {rate / base_rate:.1f}x")


if __name__ == "__main__":
    main()
