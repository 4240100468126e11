"""The Python API the CLI calls for block-diffusion text: load a model folder (the family is read
from its config.json), then generate block by block.

    model = load_block_diffusion("shakespeare-bd3")            # a registered name or a folder
    tokens, passes = generate_blocks(model, [model.tokenizer.encode("ROMEO:")], seeds=[0],
                                     max_new_tokens=200)

Families (each with ``matches(config)``; see their modules for the facts used):

- ``bd3lm`` / ``mdlm``: kuleshov-group's Hugging Face folders (model_type ``bd3lm`` / ``mdlm``),
  :mod:`argen.modalities.text.bd3lm.dit`;
- ``fast-dllm-v2``: Efficient-Large-Model/Fast_dLLM_v2_* (model_type ``Fast_dLLM_Qwen``, Qwen2.5
  weights), :mod:`argen.modalities.text.fast_dllm.model`;
- ``argen-bd3``: argen's own folders with a ``block_diffusion`` section (``shakespeare-bd3``),
  written by ``argen train text-block-diffusion``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from argen.checkpoints.argen_format import read_json
from argen.engine.sampling.masked_block import BlockSettings, OnBlock
from argen.engine.sampling.masked_block import generate_blocks as _generate
from argen.engine.sampling.processors import SamplingConfig, make_generators
from argen.errors import ArgenError, UsageError
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel


def _bd3lm_matches(config: dict[str, Any]) -> bool:
    from argen.modalities.text.bd3lm.dit import FAMILY_TYPES

    return config.get("model_type") in FAMILY_TYPES


def _fast_dllm_matches(config: dict[str, Any]) -> bool:
    from argen.modalities.text.fast_dllm.model import matches

    return matches(config)


def _argen_matches(config: dict[str, Any]) -> bool:
    return config.get("format") == "argen" and isinstance(config.get("block_diffusion"), dict)


def _load_bd3lm(folder: Path, config: dict[str, Any]) -> BlockDiffusionModel:
    from argen.modalities.text.bd3lm.load import load_bd3lm_folder

    return load_bd3lm_folder(folder, config)


def _load_fast_dllm(folder: Path, config: dict[str, Any]) -> BlockDiffusionModel:
    from argen.modalities.text.fast_dllm.model import load_fast_dllm_folder

    return load_fast_dllm_folder(folder, config)


def _load_argen(folder: Path, config: dict[str, Any]) -> BlockDiffusionModel:
    from argen.checkpoints.argen_format import load_model_dir
    from argen.modalities.text.tokenizer import load_tokenizer

    net, meta = load_model_dir(folder)
    sec = dict(meta["block_diffusion"])
    tok = load_tokenizer(folder / meta["tokenizer"]) if meta.get("tokenizer") else None
    defaults = {k: sec[k] for k in ("steps", "threshold", "temperature", "top_p", "sampler", "sub_block") if k in sec}
    for k in ("steps", "sub_block"):  # recipes write numbers as floats
        if k in defaults:
            defaults[k] = int(defaults[k])
    return BlockDiffusionModel(net=net, family="argen-bd3", mask_id=int(sec["mask_id"]),
                               block_size=int(sec["block_size"]), token_shift=bool(sec.get("token_shift", False)),
                               max_len=net.cfg.max_seq_len,
                               tokenizer=tok, eos_id=meta.get("eos_token_id"), defaults=defaults,
                               name=meta.get("name") or folder.name)


# name -> (matches(config.json as a dict), load(folder, config))
FAMILIES: dict[str, tuple[Callable[[dict], bool], Callable[[Path, dict], BlockDiffusionModel]]] = {
    "bd3lm": (_bd3lm_matches, _load_bd3lm),
    "fast-dllm-v2": (_fast_dllm_matches, _load_fast_dllm),
    "argen-bd3": (_argen_matches, _load_argen),
}


def family_of(config: dict[str, Any]) -> str | None:
    """The block-diffusion family a config.json (as a dict) belongs to, or None."""
    return next((name for name, (match, _) in FAMILIES.items() if match(config)), None)


def is_block_diffusion(path: str | Path) -> bool:
    """Whether a model folder holds a block-diffusion model (so the CLI picks this sampler)."""
    try:
        return family_of(read_json(Path(path) / "config.json")) is not None
    except ArgenError:
        return False


def _folder(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        return p
    from argen.checkpoints import resolve as weights

    return weights.resolve(str(name_or_path)).path  # a registered name, checked against its sha256


def load_block_diffusion(name_or_path: str | Path, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> BlockDiffusionModel:
    """Load a block-diffusion model (eval mode) onto ``device`` in ``dtype``. An autoregressive
    model, or a folder no family recognises, is a one-line :class:`ArgenError`."""
    folder = _folder(name_or_path)
    if not (folder / "config.json").is_file():
        raise ArgenError(f"{folder} has no config.json", hint="a model folder needs config.json beside its weights")
    config = read_json(folder / "config.json")
    family = family_of(config)
    if family is None:
        from argen.checkpoints.hf_convert import SUPPORTED

        if config.get("format") == "argen" or config.get("model_type") in SUPPORTED:
            raise UsageError(f"{folder.name} is an autoregressive model; block diffusion needs a model trained for it",
                             hint="leave out --sampler block-diffusion, or use a block-diffusion model "
                                  "(e.g. shakespeare-bd3)")
        raise ArgenError(f"{folder / 'config.json'} is not a block-diffusion model argen knows "
                         f"(model_type {config.get('model_type')!r})",
                         hint=f"supported families: {', '.join(FAMILIES)}")
    model = FAMILIES[family][1](folder, config)
    model.net.eval()
    return model.to(device, dtype)


def settings_for(model: BlockDiffusionModel, block_size: int | None = None, steps: int | None = None,
                 threshold: float | None = None, sampler: str | None = None,
                 sub_block: int | None = None) -> BlockSettings:
    """The block settings a request asks for, the model's defaults where it leaves one out. A
    block size other than the trained one is a one-line :class:`UsageError`."""
    d = model.defaults
    bs = block_size if block_size is not None else model.block_size
    if bs != model.block_size:
        raise UsageError(f"{model.name or model.family} was trained with blocks of {model.block_size} tokens, "
                         f"not {bs}", hint=f"use --block-size {model.block_size} (or leave it out)")
    return BlockSettings(block_size=bs, steps=steps if steps is not None else d.get("steps"),
                         threshold=threshold if threshold is not None else d.get("threshold", 0.9),
                         sampler=sampler or d.get("sampler", "confidence"),
                         sub_block=sub_block if sub_block is not None else d.get("sub_block"))


def default_sampling(model: BlockDiffusionModel) -> SamplingConfig:
    """The model's own sampling defaults (temperature, top-p)."""
    d = model.defaults
    return SamplingConfig(temperature=float(d.get("temperature", 1.0)), top_p=d.get("top_p"))


def generate_blocks(model: BlockDiffusionModel, prompts: list[list[int]], seeds: list[int], max_new_tokens: int,
                    block_size: int | None = None, steps: int | None = None, threshold: float | None = None,
                    sampling: SamplingConfig | None = None, sampler: str | None = None,
                    sub_block: int | None = None, on_block: OnBlock | None = None,
                    use_cache: bool = True) -> tuple[list[list[int]], list[int]]:
    """New tokens for each prompt (row ``b`` drawn with seed ``seeds[b]``) and each row's number of
    forward passes. Settings left out take the model's defaults (:func:`settings_for`,
    :func:`default_sampling`); ``on_block(k, tokens)`` streams each finished block."""
    if len(seeds) != len(prompts):
        raise UsageError(f"{len(seeds)} seeds for {len(prompts)} prompts", hint="give one seed per prompt")
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1, got {max_new_tokens}", hint="e.g. 200")
    settings = settings_for(model, block_size, steps, threshold, sampler, sub_block)
    sampling = sampling or default_sampling(model)
    dev = model.device
    gens = [make_generators(s, 1, dev)[0] for s in seeds]
    return _generate(model, prompts, max_new_tokens, settings, sampling, generators=gens, eos_id=model.eos_id,
                     on_block=on_block, use_cache=use_cache, device=dev)
