"""Janus-Pro's configuration, read from a transformers-format folder's config.json.

The folder layout is transformers' ``JanusForConditionalGeneration`` (``deepseek-community/Janus-Pro-1B``
and ``-7B``): ``{"model_type": "janus", "text_config": {...llama...}, "vision_config": {...},
"vq_config": {...}}``. Field names and defaults are those of transformers 5
``models/janus/configuration_janus.py``; ``vq_config.num_patches`` (the token grid's side) is
``vision_config.image_size // vision_config.patch_size`` as that file's ``JanusConfig`` sets it.
Only the image-generation path is read: the Llama language model, the generation embedding
(``num_embeddings`` x ``embed_dim``), its MLP aligner (``num_hidden_layers`` linear layers of width
``projection_dim``), the generation head (``image_token_embed_dim`` -> ``projection_dim`` ->
``num_embeddings``) and the VQ model (LlamaGen's VQ-16 shape: Janus-Pro tech report section 3.1,
"a codebook of size 16,384 and downsamples images by a factor of 16"; deepseek-ai/Janus
``janus/models/vq_model.py`` is LlamaGen's ``vq_model.py``). The SigLIP understanding tower is
not used for generation and is never loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argen.checkpoints.hf_convert import hf_config_to_argen
from argen.engine.config import TransformerConfig
from argen.errors import ArgenError
from argen.modalities.image.llamagen.vq import LlamaGenVQConfig

# transformers' activations (ACT2FN) the aligner and head may name: "gelu" is the exact erf form
# (the original code's torch.nn.GELU()); the tanh forms are its approximation
ACTIVATIONS = {"gelu": "none", "gelu_pytorch_tanh": "tanh", "gelu_new": "tanh"}


def matches(config: dict[str, Any]) -> bool:
    """Whether a config.json (as a dict) is a transformers-format Janus checkpoint."""
    return isinstance(config, dict) and config.get("model_type") == "janus"


@dataclass
class JanusSpec:
    """What the image-generation path of a Janus checkpoint needs, derived from its config.json."""

    text: TransformerConfig  # the Llama language model (its text head is never used: tied, not loaded)
    vq: LlamaGenVQConfig
    codebook_size: int  # image tokens: the generation head's outputs and the VQ codebook
    code_dim: int  # width of the generation embedding (the VQ code width, 8)
    projection_dim: int  # aligner and head width
    aligner_layers: int  # linear layers in the aligner (2 for Janus-Pro: the report's "two-layer MLPs")
    activation: str  # "none" (erf GELU) or "tanh"
    grid: int  # tokens per image side (24 for 384 px)
    bos_id: int | None
    pad_id: int | None

    @property
    def num_image_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def image_size(self) -> int:
        return self.grid * self.vq.downsample


def _sub(hf: dict[str, Any], key: str) -> dict[str, Any]:
    sub = hf.get(key)
    if not isinstance(sub, dict):
        raise ArgenError(f"Janus config.json has no {key!r} object",
                         hint="the config.json is incomplete; re-download it")
    return sub


def janus_spec(hf: dict[str, Any], source: str = "config.json") -> JanusSpec:
    """Translate a Janus config.json into a :class:`JanusSpec`; a config that is not Janus's, or one
    this implementation cannot run, is a one-line :class:`ArgenError`."""
    if not matches(hf):
        raise ArgenError(f"{source}: model_type {hf.get('model_type')!r} is not a Janus checkpoint",
                         hint="expected a transformers-format Janus-Pro folder (model_type \"janus\")")
    text, vision, vq = _sub(hf, "text_config"), _sub(hf, "vision_config"), _sub(hf, "vq_config")
    text = {"model_type": "llama", **text}  # transformers' default text backbone for Janus
    if text["model_type"] != "llama":
        raise ArgenError(f"{source}: Janus text model {text['model_type']!r} is not supported",
                         hint="argen runs Janus with its Llama language model")
    # the text head is never used for images: tie it to the embedding so it costs no memory
    text_cfg = hf_config_to_argen({**text, "tie_word_embeddings": True}, source=source)
    act = vq.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ArgenError(f"{source}: generation head activation {act!r} is not supported",
                         hint=f"supported: {', '.join(ACTIVATIONS)}")
    if vq.get("double_latent", False) or int(vq.get("out_channels", 3)) != 3:
        raise ArgenError(f"{source}: this VQ model (double_latent or out_channels != 3) is not Janus's",
                         hint="argen decodes Janus's VQ-16 (3 output channels, single latent)")
    mult = [int(m) for m in vq.get("channel_multiplier", (1, 1, 2, 2, 4))]
    vq_cfg = LlamaGenVQConfig(
        codebook_size=int(vq.get("num_embeddings", 16384)), codebook_dim=int(vq.get("embed_dim", 8)),
        ch=int(vq.get("base_channels", 128)), encoder_ch_mult=mult, decoder_ch_mult=list(mult),
        z_channels=int(vq.get("latent_channels", 256)), num_res_blocks=int(vq.get("num_res_blocks", 2)),
        norm_groups=32, in_channels=int(vq.get("in_channels", 3)))
    image_size, patch = vision.get("image_size", 384), vision.get("patch_size", 16)
    if not isinstance(image_size, int) or not isinstance(patch, int) or image_size % patch:
        raise ArgenError(f"{source}: vision image_size {image_size!r} is not a multiple of patch_size {patch!r}",
                         hint="argen supports square Janus images")
    grid = image_size // patch
    n_tokens = int(vision.get("num_image_tokens", grid * grid))
    if n_tokens != grid * grid:
        raise ArgenError(f"{source}: num_image_tokens {n_tokens} is not the {grid}x{grid} grid",
                         hint="the config.json is inconsistent")
    embed_width = int(vq.get("image_token_embed_dim", 2048))
    proj = int(vq.get("projection_dim", 2048))
    if embed_width != text_cfg.d_model or proj != text_cfg.d_model:
        raise ArgenError(f"{source}: generation widths ({embed_width}, {proj}) differ from the language model's "
                         f"{text_cfg.d_model}", hint="the config.json is inconsistent")
    return JanusSpec(text=text_cfg, vq=vq_cfg, codebook_size=vq_cfg.codebook_size, code_dim=vq_cfg.codebook_dim,
                     projection_dim=proj, aligner_layers=int(vq.get("num_hidden_layers", 2)),
                     activation=ACTIVATIONS[act], grid=grid,
                     bos_id=text.get("bos_token_id"), pad_id=text.get("pad_token_id"))
