"""Fast-dLLM v2 (Wu et al. 2025, Efficient-Large-Model/Fast_dLLM_v2_1.5B and _7B) on argen's
Qwen2 loader.

The checkpoints are Qwen2.5 weights under Qwen2's key names, fine-tuned for block diffusion; the
remote code (``configuration.py``: ``model_type = "Fast_dLLM_Qwen"``, ``bd_size = 32``;
``modeling.py``, e.g. the copy in github.com/Satgoy152/DualDiffusion
``FastDLLM_inferencing/Fast_dLLM_v2_7B/modeling.py``) changes three things at inference:

- attention is block-causal over absolute positions, ``q // bd_size >= k // bd_size``
  (``eval_block_diff_mask``), which is argen's mask from positions with ``block_size = bd_size``;
- token shift: the logits at position ``i`` predict token ``i + 1`` (``generate`` shifts them right
  by one within the block), and a block's first token comes from the pass that writes the
  finished block to the cache (``update_past_key_values``), argmax of its last position;
- decoding: ``generate(..., mask_id=151665, small_block_size=8, block_size=32, stop_token=151645,
  threshold, temperature=0, top_p=0.95)`` fills each block sub-block by sub-block, every pass
  committing the masked tokens whose probability passes ``threshold`` and at least the most
  probable one (the loop in :mod:`argen.engine.sampling.masked_block` with ``sub_block``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from argen.engine.config import TransformerConfig
from argen.errors import ArgenError
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel

MODEL_TYPE = "Fast_dLLM_Qwen"
ARCHITECTURE = "Fast_dLLM_QwenForCausalLM"
MASK_ID = 151665  # FAST_DLLM_MASK_ID, the token the remote code adds after Qwen2.5's vocabulary
STOP_ID = 151645  # FAST_DLLM_STOP_TOKEN, <|im_end|>
SUB_BLOCK = 8  # generate's small_block_size
THRESHOLD = 0.9  # the threshold of the model card's and the chatbot's examples


def matches(config: dict[str, Any]) -> bool:
    """A Fast-dLLM v2 config.json: its model_type, or its architecture name."""
    return config.get("model_type") == MODEL_TYPE or ARCHITECTURE in (config.get("architectures") or [])


def fast_dllm_config(hf: dict[str, Any], source: str = "") -> TransformerConfig:
    """The transformer config of a Fast-dLLM v2 config.json: Qwen2's, block-causal in blocks of ``bd_size``."""
    from argen.checkpoints.hf_convert import hf_config_to_argen

    bd = int(hf.get("bd_size", 32))
    if bd < 1:
        raise ArgenError(f"Fast-dLLM v2 config.json has bd_size {bd}", hint="the block size must be at least 1")
    cfg = hf_config_to_argen({**hf, "model_type": "qwen2"}, source=source)
    return dataclasses.replace(cfg, block_size=bd, extra={**cfg.extra, "hf_model_type": MODEL_TYPE})


def load_fast_dllm_folder(folder: Path, config: dict[str, Any]) -> BlockDiffusionModel:
    """A Fast-dLLM v2 folder (config.json, Qwen2 weights, tokenizer.json) as a block-diffusion model."""
    from argen.checkpoints.argen_format import build_model
    from argen.checkpoints.hf_convert import _read_weights, convert_state_dict
    from argen.modalities.text.tokenizer import HFTokenizer

    cfg = fast_dllm_config(config, str(folder))
    state = convert_state_dict("qwen2", _read_weights(folder), cfg)
    net = build_model(cfg, {k: v.float() for k, v in state.items()}, str(folder))
    mask_id = int(config.get("mask_token_id") or MASK_ID)
    if not 0 <= mask_id < cfg.vocab_size:
        raise ArgenError(f"Fast-dLLM v2 mask id {mask_id} is outside the vocabulary ({cfg.vocab_size})",
                         hint="set mask_token_id in config.json")
    tok = HFTokenizer(folder / "tokenizer.json", eos_id=STOP_ID) if (folder / "tokenizer.json").is_file() else None
    return BlockDiffusionModel(net=net, family="fast-dllm-v2", mask_id=mask_id, block_size=cfg.block_size,
                               token_shift=True, max_len=cfg.max_seq_len, tokenizer=tok,
                               eos_id=STOP_ID if STOP_ID < cfg.vocab_size else None,
                               defaults={"sub_block": SUB_BLOCK if cfg.block_size % SUB_BLOCK == 0 else None,
                                         "threshold": THRESHOLD, "temperature": 0.0},
                               name=folder.name)
