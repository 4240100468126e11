"""LLaMA-Mesh on argen's engine: a Llama-3.1-8B-Instruct fine-tune that answers with OBJ text.

Loaded through argen's Llama path (:func:`argen.checkpoints.hf_convert.load_hf_folder`: config.json,
sharded safetensors, tokenizer.json). The prompt is the model's own chat template applied to
``[{"role": "user", "content": prompt}]`` with the assistant header appended; the reply is
decoded under :class:`.grammar.ObjGrammar`, so it is always a well-formed OBJ, and read into a
trimesh. Facts used: nv-tlabs/LLaMA-Mesh ``app.py`` (the chat template, the terminators
``eos_token_id`` and ``<|eot_id|>``, temperature 0.95 by default, up to 8192 new tokens);
the paper (arXiv 2411.09595): coordinates quantised to 64 values, meshes of at most 500 faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import trimesh

from argen.checkpoints.argen_format import read_json
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.errors import ArgenError, UsageError
from argen.modalities.base import ticker
from argen.modalities.mesh.llama_mesh.chat import read_template, render
from argen.modalities.mesh.llama_mesh.grammar import START, ObjConstraint, ObjGrammar
from argen.modalities.mesh.llama_mesh.obj import is_well_formed, obj_to_mesh

COORD_MAX = 63  # 64 quantisation levels
MAX_FACES = 500  # the largest meshes LLaMA-Mesh was trained on
DEFAULT_NEW_TOKENS = 8192


def matches(config: dict[str, Any]) -> bool:
    """Is this config.json LLaMA-Mesh's? A Llama config naming LLaMA-Mesh in ``_name_or_path``,
    or one argen marked with ``"argen_family": "llama-mesh"`` (the released config.json is a
    plain Llama 3.1 8B config; nothing else in it tells the fine-tune apart)."""
    if not isinstance(config, dict) or config.get("model_type") != "llama":
        return False
    return config.get("argen_family") == "llama-mesh" or "llama-mesh" in str(config.get("_name_or_path", "")).lower()


@dataclass
class LlamaMeshSample:
    """One reply: its text, the mesh read from it (cleaned), the mesh as written and whether
    the text is a well-formed OBJ."""

    text: str
    tokens: list[int]
    mesh: trimesh.Trimesh
    raw: trimesh.Trimesh
    parsed: bool
    seed: int


class LlamaMesh:
    """``LlamaMesh.from_pretrained(folder).generate(2, prompt="a wooden chair")`` -> 2 meshes,
    coordinates as the model writes them (integers 0..63)."""

    family = "llama-mesh"
    takes_prompt = True
    categories: list[str] = []

    def __init__(self, model, tokenizer, folder: Path, end_ids: list[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, quantize: str = "none") -> None:
        self.device, self.dtype, self.quantize = torch.device(device), dtype, check_mode(quantize)
        self.model = quantize_weights(model.to(self.device, dtype), quantize)
        self.tok, self.folder, self.end_ids = tokenizer, Path(folder), end_ids
        self.template, self.specials = read_template(folder)
        self.grammar = ObjGrammar.from_tokenizer(tokenizer, end_ids, coord_max=COORD_MAX, max_faces=MAX_FACES)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32, quantize: str = "none") -> "LlamaMesh":
        from tokenizers import Tokenizer

        from argen.checkpoints.hf_convert import load_hf_folder

        folder = Path(folder)
        model, info = load_hf_folder(folder)
        if info["model_type"] != "llama":
            raise ArgenError(f"{folder} is a {info['model_type']} model, LLaMA-Mesh is a Llama",
                             hint="point at the LLaMA-Mesh folder (Zhengyi/LLaMA-Mesh)")
        if info["tokenizer"] is None:
            raise ArgenError(f"{folder} has no tokenizer.json", hint="download the tokenizer files too")
        tok = Tokenizer.from_file(info["tokenizer"])
        return cls(model, tok, folder, _end_ids(folder, tok), device, dtype, quantize)

    @property
    def context(self) -> int:
        return self.model.cfg.max_seq_len

    @property
    def max_faces_limit(self) -> int:
        return MAX_FACES

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig(**{"temperature": 0.95, **{k: v for k, v in overrides.items() if v is not None}})

    def prompt_ids(self, prompt: str) -> list[int]:
        """The chat-formatted prompt's token ids (special tokens in the text read as such)."""
        text = render(self.template, [{"role": "user", "content": prompt}], self.specials, add_generation_prompt=True)
        return self.tok.encode(text, add_special_tokens=False).ids

    def check(self, prompt: str | None, category: str | None = None, max_faces: int = MAX_FACES,
              max_new_tokens: int = DEFAULT_NEW_TOKENS) -> list[int]:
        """The prompt's ids; one-line UsageErrors for requests this model cannot serve."""
        if not prompt or not prompt.strip():
            raise UsageError("LLaMA-Mesh needs a text prompt", hint='e.g. -p "a wooden chair"')
        if category is not None:
            raise UsageError("LLaMA-Mesh has no categories", hint="describe the object in the prompt instead")
        if not 1 <= max_faces <= self.max_faces_limit:
            raise UsageError(f"--max-faces must be in 1..{self.max_faces_limit} for LLaMA-Mesh (its training "
                             f"meshes' limit), got {max_faces}", hint=f"e.g. --max-faces {MAX_FACES}")
        ids = self.prompt_ids(prompt)
        need = self.grammar.need(START)
        if max_new_tokens < need or len(ids) + max_new_tokens > self.context:
            raise UsageError(f"--max-new-tokens must be in {need}..{self.context - len(ids)} for this prompt and "
                             f"model (context {self.context}), got {max_new_tokens}", hint="e.g. 8192")
        return ids

    @torch.inference_mode()
    def sample(self, n: int = 1, seeds: list[int] | None = None, prompt: str | None = None,
               category: str | None = None, max_faces: int = MAX_FACES, sampling: SamplingConfig | None = None,
               constrained: bool = True, max_new_tokens: int = DEFAULT_NEW_TOKENS,
               batch_size: int = 4, use_cache: bool = True, on_progress=None,
               compile: bool = False) -> list[LlamaMeshSample]:
        """``n`` replies to ``prompt`` (seed ``seeds[i]``, default ``i``); ``on_progress(done,
        total, "tokens")`` after every step; ``compile``: the loop's --compile (on CUDA the
        graph-captured step; the OBJ grammar stays outside it, on the logits)."""
        ids = self.check(prompt, category, max_faces, max_new_tokens)
        seeds = list(range(n)) if seeds is None else list(seeds)
        if not seeds:
            raise UsageError("nothing to generate: n is 0", hint="ask for at least one mesh")
        sampling = sampling or self.default_sampling()
        self.grammar.max_faces = max_faces
        ends = set(self.end_ids)
        out = []
        for start in range(0, len(seeds), batch_size):
            chunk = seeds[start:start + batch_size]
            gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in chunk]
            allowed = ObjConstraint(self.grammar, len(chunk), max_new_tokens) if constrained else None
            seqs = generate(self.model, [ids] * len(chunk), max_new_tokens, sampling, generators=gens,
                            stop=lambda r, t: t[-1] in ends, rules=token_rules(allowed=allowed), use_cache=use_cache,
                            compile=compile, on_token=ticker(on_progress, max_new_tokens, "tokens"))
            for s, seq in zip(chunk, seqs):
                body = seq[:-1] if seq and seq[-1] in ends else seq
                text = self.tok.decode(body, skip_special_tokens=False)
                ok = bool(seq) and seq[-1] in ends and is_well_formed(text, COORD_MAX, max_faces)
                out.append(LlamaMeshSample(text, seq, obj_to_mesh(text), obj_to_mesh(text, clean=False), ok, s))
        return out

    def generate(self, n: int = 1, seeds: list[int] | None = None, prompt: str | None = None,
                 category: str | None = None, max_faces: int = MAX_FACES, sampling: SamplingConfig | None = None,
                 constrained: bool = True, max_new_tokens: int = DEFAULT_NEW_TOKENS,
                 batch_size: int = 4) -> list[trimesh.Trimesh]:
        """Meshes (cleaned); see :meth:`sample`."""
        return [s.mesh for s in self.sample(n, seeds, prompt, category, max_faces, sampling, constrained,
                                            max_new_tokens, batch_size)]


def _end_ids(folder: Path, tok) -> list[int]:
    """The ids that end a reply: generation_config.json's (else config.json's) eos_token_id(s)
    and ``<|eot_id|>`` when the vocabulary has it (LLaMA-Mesh's ``terminators``)."""
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        if (folder / name).is_file():
            value = read_json(folder / name).get("eos_token_id")
            ids = [value] if isinstance(value, int) else [v for v in value or [] if isinstance(v, int)]
            if ids:
                break
    eot = tok.token_to_id("<|eot_id|>")
    if eot is not None and eot not in ids:
        ids.append(eot)
    if not ids:
        raise ArgenError(f"{folder}: no end-of-sequence token in generation_config.json or config.json",
                         hint="the model folder is incomplete")
    return ids
