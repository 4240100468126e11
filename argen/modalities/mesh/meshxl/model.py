"""MeshXL on argen's engine: load a released folder, sample meshes (always valid when constrained).

A MeshXL folder is what its README asks for (OpenMeshLab/MeshXL ``README.md``): the size's
config.json (``mesh-xl/mesh-xl-{125m,350m,1.3b}/config.json``, model_type "opt") beside its
weights (``pytorch_model.bin`` from ``CH3COOK/mesh-xl-*``, or model.safetensors), and
optionally the category fine-tunes ``meshxl-<size>-<category>.pth`` from
``CH3COOK/MeshXL-<size>-sft`` (chair, table, bench, lamp). A fine-tune is chosen by its
category; its category is the part of the file name after the last ``-`` (the release's
naming). A ``.pth`` path loads that fine-tune alone, with the config.json beside it.

Sampling defaults are MeshXL's (``models/mesh_xl/get_model.py``: top-k 50, top-p 0.95,
temperature 1); a sequence starts from BOS alone and ends at EOS or the context.

x-mesh-xl-350m (``CH3COOK/x-mesh-xl-350m``: weights public, conditioning code public in
``models/x_mesh_xl/``) is recognised by the ``condition_encoder.*`` tensors in its checkpoint.
It takes a text prompt: CLIP ViT-B/32's tokenizer.json must sit in the folder or in its
``clip-vit-base-patch32/`` subfolder (MeshXL ships it as ``openai/clip-vit-base-patch32/``).
The prompt's 32 prefix vectors (:mod:`.text_encoder`) enter the decoder as conditioning ids
131..162 whose embedding rows are those vectors (``Transformer.cond_embed``), so argen's own
sampling loop runs it; the mesh tokens follow them directly (no BOS), as ``sample_t2m.py``
generates from ``inputs_embeds``; its sampling defaults: top-k 50, top-p 0.95, temperature 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import trimesh

from argen.checkpoints.argen_format import build_model, read_json
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.errors import ArgenError, UsageError
from argen.modalities.base import ticker
from argen.modalities.mesh.meshxl import tokenizer as tok
from argen.modalities.mesh.meshxl.constraint import MAX_FACES, MeshXLConstraint
from argen.modalities.mesh.meshxl.convert import load_opt, opt_state, read_checkpoint, strip
from argen.modalities.mesh.meshxl.text_encoder import condition_encoder, encode_prompt

DEFAULT_FACES = 800  # MeshXL's --n_max_triangles in every released script
BASE_FILES = ("model.safetensors", "pytorch_model.bin")
CLIP_TOKENIZER = ("tokenizer.json", "clip-vit-base-patch32/tokenizer.json",
                  "openai/clip-vit-base-patch32/tokenizer.json")


def matches(config: dict[str, Any]) -> bool:
    """Is this config.json a MeshXL model's? The released ones are OPT configs whose
    ``_name_or_path`` is ``mesh-xl/mesh-xl-<size>`` (their vocab_size, 50272, is OPT's, not the
    model's); a config saved from the rebuilt model has MeshXL's 131-token vocabulary."""
    if not isinstance(config, dict) or config.get("model_type") != "opt":
        return False
    return "mesh-xl" in str(config.get("_name_or_path", "")).lower() or config.get("vocab_size") == tok.VOCAB


@dataclass
class MeshXLSample:
    """One generated sequence: its tokens (after BOS), the mesh (cleaned), the mesh exactly as
    written (degenerate or repeated faces kept) and whether the sequence is well formed."""

    tokens: list[int]
    mesh: trimesh.Trimesh
    raw: trimesh.Trimesh
    parsed: bool
    seed: int


class MeshXL:
    """``MeshXL.from_pretrained(folder).generate(4, category="chair")`` -> 4 trimesh meshes in
    MeshXL's frame ([-1, 1] on the longest side)."""

    family = "meshxl"

    def __init__(self, model, config: dict[str, Any], base: Path | None, fine_tunes: dict[str, Path],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 encoder=None, text_tokenizer=None, quantize: str = "none") -> None:
        if model.cfg.vocab_size != tok.VOCAB:
            raise ArgenError(f"not a MeshXL checkpoint: its vocabulary has {model.cfg.vocab_size} tokens, MeshXL's "
                             f"has {tok.VOCAB}", hint="point at a MeshXL folder (mesh-xl-125m, -350m, -1.3b)")
        self.config, self.base, self.fine_tunes = config, base, fine_tunes
        self.device, self.dtype, self.quantize = torch.device(device), dtype, check_mode(quantize)
        self.model = quantize_weights(model.to(self.device, dtype), quantize)
        self.encoder = encoder.to(self.device) if encoder is not None else None  # kept in float32
        self.text_tokenizer = text_tokenizer
        self.loaded = None if base is not None else next(iter(fine_tunes))  # which weights are in the model

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32, quantize: str = "none") -> "MeshXL":
        """Load a MeshXL folder (or one fine-tune ``.pth`` with its config.json beside it);
        ``quantize="int8"``: int8 weights in the OPT decoder's blocks and head."""
        path = Path(path)
        folder = path.parent if path.suffix == ".pth" else path
        if not (folder / "config.json").is_file():
            raise ArgenError(f"{folder} has no config.json", hint="MeshXL needs its size's config.json beside the weights")
        config = read_json(folder / "config.json")
        if not matches(config):
            raise ArgenError(f"{folder / 'config.json'} is not a MeshXL config", hint="expected an OPT config from mesh-xl")
        if path.suffix == ".pth":
            fine_tunes, base = {_category(path): path}, None
        else:
            fine_tunes = {_category(p): p for p in sorted(folder.glob("*.pth"))}
            base = next((folder / f for f in BASE_FILES if (folder / f).is_file()), None)
        if base is None and not fine_tunes:
            raise ArgenError(f"no MeshXL weights in {folder}", hint="download pytorch_model.bin (or a fine-tune .pth)")
        first = base or next(iter(fine_tunes.values()))
        state = read_checkpoint(first)
        if not any(k.startswith("condition_encoder.") for k in state):
            model, _ = load_opt(config, state, str(first))
            return cls(model, config, base, fine_tunes, device, dtype, quantize=quantize)
        encoder = condition_encoder(state, str(first))  # x-mesh-xl: text-conditioned
        rest = {k: v for k, v in state.items() if not k.startswith("condition_encoder.")}
        model, _ = load_opt(config, rest, str(first), cond_vocab=encoder.query_embeds.num_embeddings)
        return cls(model, config, base, fine_tunes, device, dtype, encoder, _clip_tokenizer(folder), quantize)

    # ------------------------------------------------------------------ properties
    @property
    def takes_prompt(self) -> bool:
        """x-mesh-xl takes a text prompt; the base models and their fine-tunes take none."""
        return self.encoder is not None

    @property
    def prompt_len(self) -> int:
        """Positions before the first mesh token: BOS, or x-mesh-xl's 32 prefix vectors."""
        return self.encoder.query_embeds.num_embeddings if self.encoder is not None else 1

    @property
    def categories(self) -> list[str]:
        """Categories with a fine-tune in the folder (sampling with one loads its weights)."""
        return sorted(self.fine_tunes)

    @property
    def context(self) -> int:
        """Positions the model has (from its weights: 8192 for the released models)."""
        return self.model.cfg.max_seq_len

    @property
    def max_faces_limit(self) -> int:
        """Most faces a sequence can hold: BOS, 9 tokens a face; EOS is sampled, never fed."""
        return min((self.context - self.prompt_len) // tok.PER_FACE, MAX_FACES)

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig(**{"temperature": 0.1 if self.takes_prompt else 1.0, "top_k": 50, "top_p": 0.95,
                                 **{k: v for k, v in overrides.items() if v is not None}})

    # ------------------------------------------------------------------ sampling
    def check(self, category: str | None = None, prompt: str | None = None, max_faces: int = DEFAULT_FACES) -> None:
        """One-line UsageErrors for requests this model cannot serve."""
        if prompt and not self.takes_prompt:
            raise UsageError("this MeshXL model takes no text prompt (it samples unconditionally)",
                             hint="leave the prompt out" + (f"; pick a --category ({', '.join(self.categories)})"
                                                            if self.categories else "; x-mesh-xl-350m takes text"))
        if self.takes_prompt and not (prompt and prompt.strip()):
            raise UsageError("x-mesh-xl needs a text prompt", hint='e.g. -p "3d model of a table"')
        if category is not None and category not in self.fine_tunes:
            have = ", ".join(self.categories) or "none in this folder"
            raise UsageError(f"unknown category {category!r} (this MeshXL has: {have})",
                             hint="download meshxl-<size>-<category>.pth from CH3COOK/MeshXL-<size>-sft into the folder")
        if category is None and self.base is None:
            raise UsageError("this MeshXL folder holds only category fine-tunes",
                             hint=f"pick a category: {', '.join(self.categories)}")
        if not 1 <= max_faces <= self.max_faces_limit:
            raise UsageError(f"--max-faces must be in 1..{self.max_faces_limit} for this model (context "
                             f"{self.context} tokens, 9 a face), got {max_faces}",
                             hint=f"e.g. --max-faces {min(DEFAULT_FACES, self.max_faces_limit)}")

    def _use(self, category: str | None) -> None:
        """Put the base weights or a category's fine-tune into the model (once per switch)."""
        if category == self.loaded:
            return
        path = self.fine_tunes[category] if category is not None else self.base
        dec, head, other = strip(read_checkpoint(path))
        if other:
            raise ArgenError(f"{path}: {len(other)} weight(s) outside the OPT decoder, e.g. {other[:3]}",
                             hint="this is not a MeshXL fine-tune of this model")
        state = opt_state(dec, head, self.model.cfg, str(path))
        if self.model.cfg.tie_embeddings:
            state.pop("lm_head.weight", None)
        if self.quantize == "none":
            _load_strict(self.model, state, path)
        else:  # int8 layers take no float weights: the fine-tune is built in float, then quantised
            with torch.device("meta"):
                shell = Transformer(self.model.cfg)
            _check_fits(shell, state, path)
            model = build_model(self.model.cfg, {k: v.float() for k, v in state.items()}, str(path))
            self.model = quantize_weights(model.to(self.device, self.dtype), self.quantize)
        self.loaded = category

    @torch.inference_mode()
    def sample(self, n: int = 1, seeds: list[int] | None = None, category: str | None = None,
               max_faces: int = DEFAULT_FACES, sampling: SamplingConfig | None = None, constrained: bool = True,
               prompt: str | None = None, batch_size: int = 8, use_cache: bool = True,
               ordered: bool = True, on_progress=None, compile: bool = False) -> list[MeshXLSample]:
        """``n`` sequences (seed ``seeds[i]``, default ``i``), batched ``batch_size`` at a time.
        ``constrained``: every sequence a valid mesh in MeshXL's order (``ordered=False``: valid,
        in any order); ``prompt`` only for x-mesh-xl; ``category`` picks a fine-tune;
        ``on_progress(done, total, "tokens")`` after every step; ``compile``: the loop's --compile
        (on CUDA the graph-captured step; the constraint stays outside it, on the logits)."""
        self.check(category, prompt, max_faces)
        seeds = list(range(n)) if seeds is None else list(seeds)
        if not seeds:
            raise UsageError("nothing to generate: n is 0", hint="ask for at least one mesh")
        self._use(category)
        sampling = sampling or self.default_sampling()
        budget = tok.PER_FACE * max_faces + 1  # tokens after BOS (or the prefix)
        head = [tok.BOS]
        if self.encoder is not None:  # the prompt's prefix vectors become conditioning ids 131..
            ids, mask = encode_prompt(self.text_tokenizer, [prompt])
            prefix = self.encoder(ids.to(self.device), mask.to(self.device))[0]  # (32, d_model)
            self.model.cond_embed.weight.data.copy_(prefix.to(self.model.cond_embed.weight.dtype))
            head = list(range(tok.VOCAB, tok.VOCAB + self.prompt_len))
        out = []
        for start in range(0, len(seeds), batch_size):
            chunk = seeds[start:start + batch_size]
            gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(s) for s in chunk]
            allowed = MeshXLConstraint(len(chunk), max_faces, budget, ordered=ordered) if constrained else None
            seqs = generate(self.model, [head] * len(chunk), budget, sampling, generators=gens,
                            eos_id=tok.EOS, rules=token_rules(allowed=allowed), use_cache=use_cache,
                            compile=compile, on_token=ticker(on_progress, budget, "tokens"))
            for s, seq in zip(chunk, seqs):
                _, parsed = tok.split_faces(seq)
                out.append(MeshXLSample(seq, tok.detokenize(seq), tok.detokenize(seq, clean=False), parsed, s))
        return out

    def generate(self, n: int = 1, seeds: list[int] | None = None, category: str | None = None,
                 max_faces: int = DEFAULT_FACES, sampling: SamplingConfig | None = None, constrained: bool = True,
                 prompt: str | None = None, batch_size: int = 8, ordered: bool = True) -> list[trimesh.Trimesh]:
        """Meshes (cleaned, in [-1, 1]); see :meth:`sample`."""
        return [s.mesh for s in self.sample(n, seeds, category, max_faces, sampling, constrained, prompt, batch_size,
                                            ordered=ordered)]


def _check_fits(model, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """``model``'s own weights (the tied head left out) if ``state`` has exactly their keys and shapes."""
    own = model.state_dict()
    if model.cfg.tie_embeddings:
        own.pop("lm_head.weight", None)
    bad = sorted(set(own) ^ set(state)) + sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if bad:
        raise ArgenError(f"{path}: weights do not fit this MeshXL size (e.g. {bad[:3]})",
                         hint="the fine-tune belongs to another model size; use its size's config.json")
    return own


def _load_strict(model, state: dict[str, torch.Tensor], path: Path) -> None:
    own = _check_fits(model, state, path)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


def _clip_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    for name in CLIP_TOKENIZER:
        if (folder / name).is_file():
            return Tokenizer.from_file(str(folder / name))
    raise ArgenError(f"x-mesh-xl needs CLIP's tokenizer.json in {folder} (or clip-vit-base-patch32/ in it)",
                     hint="copy openai/clip-vit-base-patch32/tokenizer.json from the MeshXL repository")


def _category(path: Path) -> str:
    return path.stem.rsplit("-", 1)[-1].lower()
