"""BD3-LM's training objective: the block diffusion negative ELBO (Arriola et al. 2025).

Every block of a window is masked at its own rate ``t``: each token becomes the mask token with
probability ``t`` (the linear schedule, ``alpha_t = 1 - t``). The model reads the noisy window
``x_t`` beside the clean one ``x_0`` (2n tokens) under BD3-LM's training mask, so that a noisy
block attends to itself and to the clean blocks before it, and the clean copy is block-causal,
and predicts each masked token; the loss weighs a masked token's cross-entropy by
``1 / t`` (``-alpha_t' / (1 - alpha_t)``). With ``t`` uniform on (0, 1] this is an unbiased
estimate of the negative ELBO, an upper bound on the negative log-likelihood.

Facts from kuleshov-group/bd3lms: ``models/hf/modeling_bd3lm.py`` (``block_diff_mask``; the
rotary positions of ``x_t`` and ``x_0`` both run 0..n-1), ``diffusion.py`` (``_sample_t``:
one rate per block, antithetic over batch and blocks; ``q_xt``; ``_forward_pass_diffusion``: the
first token kept clean with ``algo.ignore_bos``; ``_subs_parameterization``: the mask token gets
no probability), ``noise_schedule.py`` (``LogLinearNoise.compute_loss_scaling_and_move_chance``:
move chance ``t``, loss scale ``-1 / t``).

With ``shift`` (Fast-dLLM v2's token shift, Wu et al. 2025, for a model adapted from an
autoregressive one) the output at position ``j - 1`` predicts token ``j``: inside a noisy block
from the noisy copy, and for a block's first token from the clean copy's last token of the block
before (which reads exactly the tokens before ``j``, as a next-token model does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def block_diff_mask(n: int, block_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """BD3-LM's training mask (2n, 2n) bool over [x_t, x_0]: query i may read key j.

    Block-diagonal within x_t and within x_0 (a block reads itself), offset block-causal from
    x_t to x_0 (a noisy block reads the clean blocks strictly before it), block-causal within x_0.
    """
    idx = torch.arange(2 * n, device=device)
    clean = idx >= n
    blk = torch.where(clean, idx - n, idx) // block_size
    q_clean, k_clean = clean[:, None], clean[None, :]
    q_blk, k_blk = blk[:, None], blk[None, :]
    diagonal = (q_blk == k_blk) & (q_clean == k_clean)
    offset_causal = (q_blk > k_blk) & k_clean & ~q_clean
    causal = (q_blk >= k_blk) & k_clean & q_clean
    return diagonal | offset_causal | causal


def block_rates(batch: int, n: int, block_size: int, lo: float = 0.0, hi: float = 1.0,
                draws: int = 1, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Masking rates (draws * B, n): one per block, stratified over all draws, rows and blocks
    (BD3-LM's antithetic sampling), mapped into [lo, hi] and held by every token of its block."""
    nb = -(-n // block_size)
    m = draws * batch * nb
    u = torch.rand(m, generator=generator, device=generator.device if generator is not None else device)
    u = ((u + torch.arange(m, device=u.device)) / m)[torch.randperm(m, generator=generator, device=u.device)]
    t = (lo + (hi - lo) * u).to(device).view(draws * batch, nb)
    return t.repeat_interleave(block_size, dim=1)[:, :n]


def noised(x0: torch.Tensor, t: torch.Tensor, mask_id: int, first_clean: bool = True,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t: each token of ``x0`` (B, n) replaced by ``mask_id`` with probability ``t`` (B, n);
    the first token stays clean (BD3-LM's ``ignore_bos``: it plays the beginning of sequence)."""
    u = torch.rand(x0.shape, generator=generator, device=generator.device if generator is not None else x0.device)
    xt = torch.where(u.to(x0.device) < t, torch.full_like(x0, mask_id), x0)
    if first_clean:
        xt[:, 0] = x0[:, 0]
    return xt


def shifted(out: torch.Tensor, n: int, block_size: int) -> torch.Tensor:
    """The predictions (B, n, V) of the noisy tokens under token shift, from the outputs (B, 2n, V)
    over [x_t, x_0]: token ``j`` from noisy output ``j - 1``, a block's first token from clean
    output ``j - 1``; position 0 (always clean) keeps its own output as a placeholder."""
    noisy, clean = out[:, :n], out[:, n:]
    prev = torch.cat([noisy[:, :1], noisy[:, :-1]], 1)
    starts = torch.zeros(n, dtype=torch.bool, device=out.device)
    starts[block_size::block_size] = True
    from_clean = torch.cat([clean[:, :1], clean[:, :-1]], 1)
    return torch.where(starts[None, :, None], from_clean, prev)


def masked_nll(net, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, block_size: int, mask_id: int,
               shift: bool = False) -> torch.Tensor:
    """Weighted cross-entropy (B, n): ``-log p(x0 | x_t) / t`` at masked positions, 0 elsewhere.

    ``net(ids, pos=, attn_mask=)`` is a block-causal transformer (argen's, or BD3-LM's DiT);
    ``shift``: its output at ``j - 1`` predicts token ``j`` (:func:`shifted`).
    """
    b, n = x0.shape
    ids = torch.cat([xt, x0], dim=1)  # (B, 2n)
    pos = torch.arange(n, device=x0.device).repeat(2).expand(b, 2 * n)
    mask = block_diff_mask(n, block_size, x0.device)[None, None]  # (1, 1, 2n, 2n)
    out = net(ids, pos=pos, attn_mask=mask)
    logits = (shifted(out, n, block_size) if shift else out[:, :n]).float()  # (B, n, V): the noisy tokens' predictions
    logits[..., mask_id] = float("-inf")  # SUBS: the mask token is never the answer
    nll = F.cross_entropy(logits.flatten(0, 1), x0.flatten(), reduction="none").view(b, n)
    return torch.where(xt == mask_id, nll / t, torch.zeros_like(nll))


def bd3_loss(net, x0: torch.Tensor, block_size: int, mask_id: int, lo: float = 1e-3, hi: float = 1.0,
             generator: torch.Generator | None = None, shift: bool = False) -> torch.Tensor:
    """The training loss: the negative ELBO per scored token (every token but the first) of the
    windows ``x0`` (B, n), with rates drawn in [lo, hi] (BD3-LM draws in [1e-3, 1])."""
    b, n = x0.shape
    t = block_rates(b, n, block_size, lo, hi, generator=generator, device=x0.device)
    xt = noised(x0, t, mask_id, generator=generator)
    return masked_nll(net, x0, xt, t, block_size, mask_id, shift).sum() / (b * (n - 1))


@torch.no_grad()
def nelbo(net, windows: torch.Tensor, block_size: int, mask_id: int, draws: int = 4, batch_size: int = 32,
          seed: int = 0, shift: bool = False) -> float:
    """The negative ELBO in nats per scored token over ``windows`` (W, n), each token but a window's
    first scored, ``draws`` stratified rates per block on (0, 1] (a Monte-Carlo estimate of the
    bound; more draws, less variance, the same expectation)."""
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    dev = windows.device
    for i in range(0, windows.shape[0], batch_size):
        x0 = windows[i:i + batch_size]
        b, n = x0.shape
        t = block_rates(b, n, block_size, 0.0, 1.0, draws=draws, generator=gen).clamp(min=1e-6).to(dev)
        x = x0.repeat(draws, 1)  # (draws * B, n)
        xt = noised(x, t, mask_id, generator=gen)
        for j in range(0, x.shape[0], batch_size):
            total += masked_nll(net, x[j:j + batch_size], xt[j:j + batch_size], t[j:j + batch_size],
                                block_size, mask_id, shift).sum().item()
        count += draws * b * (n - 1)
    return total / count
