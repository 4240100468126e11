"""Read a transformers-format Janus folder's weights into argen's modules.

Key names are those transformers 5 writes for ``JanusForConditionalGeneration`` (its
``convert_janus_weights_to_hf.py`` maps deepseek-ai/Janus's names onto them):
``model.language_model.*`` (Llama), ``model.generation_embeddings``, ``model.generation_aligner.
{fc1,hidden_layers.N}``, ``model.generation_head.{proj_out,vision_head}`` and ``model.vqmodel.*``.
The VQ keys are LlamaGen's VQ-16 keys renamed (``conv_blocks.N.res`` -> ``down|up.N.block``,
``mid.0/1/2`` -> ``mid.block_1/attn_1/block_2``); they are renamed back here so that argen's
:class:`LlamaGenVQ` loads them strictly. The understanding path (``model.vision_model``,
``model.aligner``) and the text head (``lm_head``) are not read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch

from argen.checkpoints.argen_format import check_state, first_line, read_json, read_torch_file
from argen.checkpoints.hf_convert import convert_state_dict
from argen.engine.transformer import rope_freqs
from argen.errors import ArgenError
from argen.modalities.image.janus.config import JanusSpec
from argen.modalities.image.janus.model import JanusImageLM
from argen.modalities.image.llamagen.vq import USAGE_BUFFER, LlamaGenVQ

IGNORED = ("model.vision_model.", "model.aligner.", "lm_head.")
# transformers' VQ names -> LlamaGen's (the inverse of convert_janus_weights_to_hf.py's MAPPINGS)
_VQ_RENAMES = [
    (re.compile(r"^encoder\.down\.(\d+)\.block\."), r"encoder.conv_blocks.\1.res."),
    (re.compile(r"^encoder\.down\.(\d+)\.(attn|downsample)\."), r"encoder.conv_blocks.\1.\2."),
    (re.compile(r"^decoder\.up\.(\d+)\.block\."), r"decoder.conv_blocks.\1.res."),
    (re.compile(r"^decoder\.up\.(\d+)\.(attn|upsample)\."), r"decoder.conv_blocks.\1.\2."),
    (re.compile(r"^(encoder|decoder)\.mid\.block_1\."), r"\1.mid.0."),
    (re.compile(r"^(encoder|decoder)\.mid\.attn_1\."), r"\1.mid.1."),
    (re.compile(r"^(encoder|decoder)\.mid\.block_2\."), r"\1.mid.2."),
]
_ALIGNER = re.compile(r"model\.generation_aligner\.(fc1|hidden_layers\.(\d+))\.(weight|bias)")
_HEAD = {"proj_out": "head_proj", "vision_head": "head_out"}


def wanted(key: str) -> bool:
    return not key.startswith(IGNORED)


def _shard_names(folder: Path, index: Path) -> list[str]:
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ArgenError(f"{index} has no weight_map", hint="the index file is corrupt")
    names = sorted(set(weight_map.values()), key=str)
    for name in names:  # a shard must sit inside the model folder
        if not isinstance(name, str) or Path(name).name != name:
            raise ArgenError(f"{index} names an invalid shard file {name!r}", hint="the index file is corrupt")
    return names


def read_weights(folder: Path, keep: Callable[[str], bool] = wanted) -> dict[str, torch.Tensor]:
    """The tensors of a transformers folder whose names ``keep`` accepts (safetensors are read
    tensor by tensor, so the unused SigLIP tower is never loaded)."""
    from safetensors import SafetensorError, safe_open

    files = []
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif (folder / "model.safetensors.index.json").is_file():
        files = [folder / n for n in _shard_names(folder, folder / "model.safetensors.index.json")]
    elif (folder / "pytorch_model.bin").is_file():
        return {k: v for k, v in read_torch_file(folder / "pytorch_model.bin").items() if keep(k)}
    else:
        raise ArgenError(f"no weights in {folder} (looked for model.safetensors, sharded safetensors, "
                         "pytorch_model.bin)", hint="download the weight files into the folder")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise ArgenError(f"weight file {f} not found", hint="the download is incomplete; fetch every shard")
        try:
            with safe_open(str(f), framework="pt", device="cpu") as sf:
                for k in sf.keys():
                    if keep(k):
                        state[k] = sf.get_tensor(k)
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ArgenError(f"{f} is not a readable safetensors file ({first_line(e)})",
                             hint="the file is corrupt or truncated; re-download it") from None
    return state


def vq_key(name: str) -> str:
    """A transformers VQ key (after ``model.vqmodel.``) -> LlamaGen's name for it."""
    for pattern, repl in _VQ_RENAMES:
        name, n = pattern.subn(repl, name)
        if n:
            break
    return name


def split_state(state: dict[str, torch.Tensor], spec: JanusSpec, source: str
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """transformers' names -> (:class:`JanusImageLM` state, :class:`LlamaGenVQ` state). A key of
    neither (another model's checkpoint) is a one-line error."""
    lm: dict[str, torch.Tensor] = {}
    gen: dict[str, torch.Tensor] = {}
    vq: dict[str, torch.Tensor] = {}
    unknown = []
    for key, t in state.items():
        if not wanted(key):
            continue
        if key.startswith("model.language_model."):
            lm["model." + key.removeprefix("model.language_model.")] = t
        elif key.startswith("model.vqmodel."):
            name = key.removeprefix("model.vqmodel.")
            if name != USAGE_BUFFER:
                vq[vq_key(name)] = t
        elif key == "model.generation_embeddings.weight":
            gen["gen_embed.weight"] = t
        elif m := _ALIGNER.fullmatch(key):
            gen[f"aligner.{0 if m[2] is None else int(m[2]) + 1}.{m[3]}"] = t
        elif (m := re.fullmatch(r"model\.generation_head\.(proj_out|vision_head)\.(weight|bias)", key)):
            gen[f"{_HEAD[m[1]]}.{m[2]}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ArgenError(f"{source}: {len(unknown)} weight(s) a Janus checkpoint does not have, e.g. {unknown[:3]}",
                         hint="the config.json says Janus but the weights are another model's")
    try:
        converted = convert_state_dict("llama", lm, spec.text)
    except ArgenError as e:
        raise ArgenError(f"{source}: {e.message}", hint=e.hint) from None
    gen.update({f"lm.{k}": v for k, v in converted.items() if k != "lm_head.weight"})
    return gen, vq


def build(spec: JanusSpec, state: dict[str, torch.Tensor], source: str, dtype: torch.dtype = torch.float32,
          device: torch.device | str = "cpu") -> tuple[JanusImageLM, LlamaGenVQ]:
    """The generation model and the VQ model in ``dtype`` on ``device`` (the reference runs both in
    one dtype), eval mode; every tensor present with its expected shape, none extra."""
    gen_state, vq_state = split_state(state, spec, source)
    with torch.device("meta"):
        model = JanusImageLM(spec)
        vq = LlamaGenVQ(spec.vq)
    hint = "the config.json and the weight files come from different models"
    expected = {k: v.shape for k, v in model.state_dict().items() if k != "lm.lm_head.weight"}  # tied to the embedding
    check_state(gen_state, expected, source, "Janus config", hint)
    check_state(vq_state, {k: v.shape for k, v in vq.state_dict().items()}, source, "Janus VQ config", hint)
    model.load_state_dict({k: v.to(device, dtype) for k, v in gen_state.items()}, strict=False, assign=True)
    model.lm.lm_head.weight = model.lm.embed.weight
    model.lm.inv_freq = rope_freqs(spec.text).to(device)  # a non-persistent buffer, not in the state
    vq.load_state_dict({k: v.to(device, dtype) for k, v in vq_state.items()}, strict=True, assign=True)
    return model.eval(), vq.eval()
