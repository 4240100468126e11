"""Open a BD3-LM or MDLM Hugging Face folder (config.json, model.safetensors or pytorch_model.bin,
optionally GPT-2's tokenizer.json) as a :class:`BlockDiffusionModel`.

The sampler defaults are those of BD3-LM's generative-perplexity scripts
(kuleshov-group/bd3lms ``scripts/gen_ppl/genppl_bd3lm.sh``: ``sampling.nucleus_p=0.9``,
``first_hitting: True`` in ``configs/config.yaml``). The mask token is the last id
(``push_to_hf.py``: GPT-2's vocabulary plus one). Samples have a fixed length (``sampling.var_length:
False``): GPT-2's end of text (50256) separates documents inside a sample and ends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.modalities.text.bd3lm.dit import build_dit
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel

GPT2_EOS = 50256


def load_bd3lm_folder(folder: Path, config: dict[str, Any]) -> BlockDiffusionModel:
    from argen.checkpoints.hf_convert import _read_weights
    from argen.modalities.text.tokenizer import HFTokenizer

    net = build_dit(config, _read_weights(folder), str(folder))
    vocab = net.cfg.vocab_size
    tok = HFTokenizer(folder / "tokenizer.json", eos_id=GPT2_EOS) if (folder / "tokenizer.json").is_file() else None
    return BlockDiffusionModel(net=net, family=config["model_type"], mask_id=vocab - 1, block_size=net.cfg.block_size,
                               token_shift=False, max_len=net.cfg.max_seq_len, tokenizer=tok, eos_id=None,
                               defaults={"sampler": "first-hitting", "top_p": 0.9, "temperature": 1.0},
                               name=folder.name)
