"""Class-conditional LlamaGen sampling: class label -> the engine's next-token loop (KV cache,
CFG by batch doubling) -> a grid of VQ codes -> the tokenizer's decoder -> uint8 images.

Sampling follows FoundationVision/LlamaGen ``autoregressive/models/generate.py``: the null class
``num_classes`` conditions the unconditional twin of each row, logits are combined as
``uncond + scale * (cond - uncond)``, then temperature, top-k and top-p are applied. The
reference guides only when ``cfg_scale > 1``; here any scale other than 1 guides (argen's
convention: 0 is the unconditional model).
"""

from __future__ import annotations

import math

import torch

from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import UsageError
from argen.modalities.image.llamagen.vq import LlamaGenVQ, indices_to_images

# the settings of the README's FID figures for GPT-B and GPT-L (GETTING_STARTED.md --cfg-scale 2.0;
# sample_c2i_ddp.py: top-k 0, top-p 1, temperature 1); a converted folder's config.json
# "sampling" holds each size's own (XL and XXL: 1.75, 3B: 1.65)
DEFAULT_SAMPLING = SamplingConfig(temperature=1.0, cfg_scale=2.0)


def cfg_tokens_from_interval(cfg_interval: float) -> int | None:
    """LlamaGen's ``--cfg-interval`` as :attr:`SamplingConfig.cfg_tokens`.

    The reference guides the prefill token, then decode step ``i`` (which samples token
    ``i + 1``) while ``i <= cfg_interval``; -1 (or less) guides every token. So the tokens
    ``0 .. floor(cfg_interval) + 1`` are guided.
    """
    if cfg_interval <= -1:
        return None
    return math.floor(cfg_interval) + 2


def class_prompts(gpt: Transformer, class_labels: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    """Prompts of the conditional rows (one class token each) and of their unconditional twins
    (the null class). Class ``c`` is token id ``vocab_size + c``."""
    c = gpt.cfg
    num_classes = c.cond_vocab - 1
    bad = [y for y in class_labels if not 0 <= int(y) < num_classes]
    if bad:
        raise UsageError(f"class label {bad[0]} is out of range", hint=f"ImageNet classes are 0..{num_classes - 1}")
    return [[c.vocab_size + int(y)] for y in class_labels], [[c.vocab_size + num_classes] for _ in class_labels]


def sample_llamagen_tokens(gpt: Transformer, class_labels: list[int], sampling: SamplingConfig | None = None, *,
                           seed: int | None = None, generators: list[torch.Generator] | None = None,
                           use_cache: bool = True, compile: bool = False) -> torch.Tensor:
    """Code grids (B, grid, grid) for ``class_labels`` (B,), sampled with ``sampling`` (CFG scale,
    ``cfg_tokens``, temperature, top-k/p). Row ``b`` uses ``generators[b]`` or seed ``seed + b``.
    ``compile``: the loop's --compile (on CUDA the graph-captured decode step)."""
    sampling = sampling or SamplingConfig()
    prompts, uncond = class_prompts(gpt, class_labels)
    grid = gpt.cfg.rope_grid
    rows = generate(gpt, prompts, grid * grid, sampling, seed=seed, generators=generators, use_cache=use_cache,
                    compile=compile, rules=token_rules(uncond_prompts=uncond if sampling.guided else None))
    return torch.tensor(rows, dtype=torch.long).view(len(prompts), grid, grid)  # (B, h, w)


def sample_llamagen(vq: LlamaGenVQ, gpt: Transformer, class_labels: list[int], sampling: SamplingConfig | None = None,
                    *, seed: int | None = None, generators: list[torch.Generator] | None = None,
                    use_cache: bool = True, compile: bool = False):
    """Images for ``class_labels`` (B,): uint8 numpy array (B, H, W, 3), H = W = grid * 16 (VQ-16)."""
    tokens = sample_llamagen_tokens(gpt, class_labels, sampling, seed=seed, generators=generators,
                                    use_cache=use_cache, compile=compile)
    return indices_to_images(vq, tokens)
