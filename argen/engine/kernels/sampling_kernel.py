"""The fused sampling kernel (Triton): classifier-free guidance, temperature, top-k, top-p,
min-p and the draw of one token per row, in one launch and without sorting the vocabulary.

The draw is FlashInfer's dual-pivot rejection sampling (flashinfer-ai/flashinfer
``include/flashinfer/sampling.cuh``, ``TopKSamplingFromProbKernel`` and
``TopPSamplingFromProbKernel``; docs.flashinfer.ai ``api/sampling``: "rejection sampling without
explicit sorting"): draw a token j by inverse transform from the weights above a pivot ``low``,
then count the tokens strictly more likely than j. Every filter here keeps an upper set of the
distribution (the tokens at least as likely as some threshold), so if j fails the filter every
token no more likely than j fails too: raise ``low`` to j's weight and draw again. A second pivot
halfway to ``high`` (FlashInfer's ``pivot_1``) shrinks the search faster. The accepted token is
distributed exactly as the filtered, renormalised distribution.

argen's filters compose as :func:`argen.engine.sampling.processors.process_logits` composes them:
top-k, then top-p on the top-k distribution renormalised, then min-p. With top-k and top-p
together, top-p's budget is a share of the top-k mass, so that mass is found first by a bisection
over the float32 bit patterns of the weights (31 counting passes, exact, no sort). Min-p keeps
tokens whose weight ``exp(l - max)`` is at least ``min_p`` (the top token's weight is 1).

Weights live in a float32 scratch row (``work``); ``seeds`` give each row its own Philox stream
(``tl.rand(seed, round)``), so a row's draw does not depend on the other rows of the batch.
A program handles ``ROWS`` rows as a (ROWS, BLOCK) tile: one on a GPU (a row per program), many
under Triton's CPU interpreter, whose cost is per operation, not per element (the tests draw
thousands of samples that way).
"""

from __future__ import annotations

import triton
import triton.language as tl

DRAW_ROUNDS = 64  # a bound, never reached in practice: each round at least halves the candidates' pivot range


@triton.jit
def fused_sample_kernel(cond_ptr, uncond_ptr, work_ptr, out_ptr, seeds_ptr, n_rows, V, stride_c, stride_u,
                        cfg_scale, temperature, top_k, top_p, min_p,
                        HAS_UNCOND: tl.constexpr, GREEDY: tl.constexpr, TOPK_BISECT: tl.constexpr,
                        HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr, BLOCK: tl.constexpr,
                        ROWS: tl.constexpr, MAX_ROUNDS: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)  # (R,)
    live = rows < n_rows
    rows64 = rows.to(tl.int64)
    offs = tl.arange(0, BLOCK)
    c_rows = (cond_ptr + rows64 * stride_c)[:, None]  # (R, 1) row pointers
    u_rows = (uncond_ptr + rows64 * stride_u)[:, None]
    w_rows = work_ptr + rows64 * V  # (R,)

    # pass 1: guidance (u + s (c - u), in float32 as processors.apply_cfg), then the greedy
    # argmax (first index of the maximum, as torch.argmax) or temperature and each row's maximum
    best = tl.full((ROWS,), float("-inf"), tl.float32)
    best_i = tl.zeros((ROWS,), tl.int32)
    for start in range(0, V, BLOCK):
        idx = start + offs
        inb = live[:, None] & (idx < V)[None, :]  # (R, BLOCK)
        x = tl.load(c_rows + idx[None, :], mask=inb, other=0.0).to(tl.float32)
        if HAS_UNCOND:
            y = tl.load(u_rows + idx[None, :], mask=inb, other=0.0).to(tl.float32)
            x = y + cfg_scale * (x - y)
        x = tl.where(inb, x, float("-inf"))
        if GREEDY:
            m = tl.max(x, 1)
            i = tl.argmax(x, 1)
            best_i = tl.where(m > best, start + i, best_i)
            best = tl.maximum(best, m)
        else:
            x = x / temperature
            tl.store(w_rows[:, None] + idx[None, :], x, mask=inb)
            best = tl.maximum(best, tl.max(x, 1))
    if GREEDY:
        tl.store(out_ptr + rows64, best_i.to(tl.int64), mask=live)
    else:
        best = tl.where(live, best, 0.0)  # rows past the end: finite, ignored
        # pass 2: unnormalised weights w = exp(l - max) in [0, 1], the top token's exactly 1
        total = tl.zeros((ROWS,), tl.float32)
        for start in range(0, V, BLOCK):
            idx = start + offs
            inb = live[:, None] & (idx < V)[None, :]
            ptr = w_rows[:, None] + idx[None, :]
            w = tl.exp(tl.load(ptr, mask=inb, other=float("-inf")) - best[:, None])
            tl.store(ptr, w, mask=inb)
            total += tl.sum(w, 1)

        thr = tl.zeros((ROWS,), tl.float32) + min_p  # candidates: weight >= thr (min-p; top-k below)
        k_lim = V + 1  # accept j when fewer than k_lim tokens are more likely ...
        p_lim = 2.0 * total  # ... and their mass is below p_lim
        if HAS_TOPK:
            if TOPK_BISECT:
                # the k-th largest weight t: the largest float with count(w >= t) >= k, by
                # bisection over the bit patterns of non-negative floats (monotone as integers)
                lo = tl.zeros((ROWS,), tl.int32)
                hi = tl.zeros((ROWS,), tl.int32) + 0x3F800001  # just above 1.0: no weight reaches it
                for _ in range(31):
                    mid = lo + (hi - lo) // 2
                    t = mid.to(tl.float32, bitcast=True)
                    cnt = tl.zeros((ROWS,), tl.int32)
                    for start in range(0, V, BLOCK):
                        idx = start + offs
                        inb = live[:, None] & (idx < V)[None, :]
                        w = tl.load(w_rows[:, None] + idx[None, :], mask=inb, other=-1.0)
                        cnt += tl.sum((w >= t[:, None]).to(tl.int32), 1)
                    up = cnt >= top_k
                    lo = tl.where(up, mid, lo)
                    hi = tl.where(up, hi, mid)
                t_k = lo.to(tl.float32, bitcast=True)
                mass_k = tl.zeros((ROWS,), tl.float32)
                for start in range(0, V, BLOCK):
                    idx = start + offs
                    inb = live[:, None] & (idx < V)[None, :]
                    w = tl.load(w_rows[:, None] + idx[None, :], mask=inb, other=0.0)
                    mass_k += tl.sum(tl.where(w >= t_k[:, None], w, 0.0), 1)
                thr = tl.maximum(thr, t_k)
                p_lim = top_p * mass_k  # top-p of the top-k distribution renormalised
            else:
                k_lim = top_k
        if HAS_TOPP:
            if not TOPK_BISECT:
                p_lim = top_p * total

        q = tl.zeros((ROWS,), tl.float32)  # the candidates' mass, for the first draw
        for start in range(0, V, BLOCK):
            idx = start + offs
            inb = live[:, None] & (idx < V)[None, :]
            w = tl.load(w_rows[:, None] + idx[None, :], mask=inb, other=0.0)
            q += tl.sum(tl.where(w >= thr[:, None], w, 0.0), 1)

        seed = tl.load(seeds_ptr + rows64, mask=live, other=0)
        # candidates also need w > low; starting at 0 keeps tokens of weight 0 (masked at -inf, or
        # underflowed) out even when u rounds past the candidates' mass and the last one is taken
        low = tl.zeros((ROWS,), tl.float32)
        high = tl.zeros((ROWS,), tl.float32) + 2.0
        picked = tl.zeros((ROWS,), tl.int32)
        accepted = tl.where(live, 0, 1)
        rnd = 0
        while (tl.min(accepted, 0) == 0) & (rnd < MAX_ROUNDS):
            u = tl.rand(seed, tl.zeros((ROWS,), tl.int32) + rnd) * q
            agg = tl.zeros((ROWS,), tl.float32)
            pick = tl.zeros((ROWS,), tl.int32) + V
            last = tl.zeros((ROWS,), tl.int32) - 1
            for start in range(0, V, BLOCK):  # inverse transform over the candidates
                idx = start + offs
                inb = live[:, None] & (idx < V)[None, :]
                w = tl.load(w_rows[:, None] + idx[None, :], mask=inb, other=0.0)
                ok = inb & (w >= thr[:, None]) & (w > low[:, None])
                wv = tl.where(ok, w, 0.0)
                cdf = agg[:, None] + tl.cumsum(wv, 1)
                pick = tl.minimum(pick, tl.min(tl.where(ok & (cdf > u[:, None]), idx[None, :], V), 1))
                last = tl.maximum(last, tl.max(tl.where(ok, idx[None, :], -1), 1))
                agg += tl.sum(wv, 1)
            pick = tl.maximum(tl.where(pick == V, last, pick), 0)  # u rounded past the last candidate
            p0 = tl.load(w_rows + pick, mask=live, other=1.0)
            p1 = (p0 + high) * 0.5
            c0 = tl.zeros((ROWS,), tl.int32)
            c1 = tl.zeros((ROWS,), tl.int32)
            m0 = tl.zeros((ROWS,), tl.float32)
            m1 = tl.zeros((ROWS,), tl.float32)
            for start in range(0, V, BLOCK):  # who is more likely than the pivots
                idx = start + offs
                inb = live[:, None] & (idx < V)[None, :]
                w = tl.load(w_rows[:, None] + idx[None, :], mask=inb, other=-1.0)
                g0 = w > p0[:, None]
                g1 = w > p1[:, None]
                c0 += tl.sum(g0.to(tl.int32), 1)
                c1 += tl.sum(g1.to(tl.int32), 1)
                m0 += tl.sum(tl.where(g0, w, 0.0), 1)
                m1 += tl.sum(tl.where(g1, w, 0.0), 1)
            ok0 = (c0 < k_lim) & (m0 < p_lim)
            ok1 = (c1 < k_lim) & (m1 < p_lim)
            open_ = accepted == 0  # rows still drawing; accepted rows keep their token
            picked = tl.where(open_, pick, picked)
            # rejected: every token up to p0 fails; if p1 passes, the threshold lies in (p0, p1]
            rejected = open_ & (ok0 == 0)
            low = tl.where(rejected, tl.where(ok1, p0, p1), low)
            q = tl.where(rejected, tl.where(ok1, m0, m1), q)
            high = tl.where(rejected & ok1, p1, high)
            accepted = tl.where(open_ & ok0, 1, accepted)
            rnd += 1
        tl.store(out_ptr + rows64, picked.to(tl.int64), mask=live)
