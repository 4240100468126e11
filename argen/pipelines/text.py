"""Text generation: prompt -> tokens -> the engine's sampler -> text (+ metadata)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from argen import weights
from argen.device import resolve_device, resolve_dtype
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.models.loader import load_transformer
from argen.models.text_tokenizer import load_tokenizer
from argen.samplers.next_token import generate
from argen.samplers.processors import SamplingConfig
from argen.samplers.speculative import LookupDrafter, ModelDrafter, SpecStats, speculative_generate


@dataclass
class TextRequest:
    prompts: list[str]
    max_new_tokens: int = 500
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    num_samples: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    draft: str | None = None  # a draft model's name or path, for speculative decoding
    lookup: int | None = None  # prompt-lookup drafts with n-grams up to this size
    draft_tokens: int = 4  # tokens drafted per speculative step
    seeds: list[int] | None = None  # one seed per prompt (batch recipes); overrides seed/num_samples
    on_text: Callable[[str], None] | None = None  # streaming; only used for a single output

    def __post_init__(self) -> None:
        if not self.prompts or any(p == "" for p in self.prompts):
            raise UsageError("the prompt is empty", hint="give --prompt TEXT, --prompt-file FILE, or text on stdin")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}", hint="e.g. 200")
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}", hint="e.g. -n 4")
        if self.draft and self.lookup:
            raise UsageError("--draft and --lookup are two kinds of drafts; pick one", hint="drop one of them")
        if self.lookup is not None and self.lookup < 1:
            raise UsageError(f"--lookup must be at least 1, got {self.lookup}", hint="e.g. --lookup 3")
        if not 1 <= self.draft_tokens <= 32:
            raise UsageError(f"--draft-tokens must be in [1, 32], got {self.draft_tokens}", hint="e.g. 4")
        if self.seeds is not None and (len(self.seeds) != len(self.prompts) or self.num_samples != 1):
            raise UsageError("seeds must give one seed per prompt, with one sample each", hint="check the request")
        if any(s == "" for s in self.stop):
            raise UsageError("--stop needs a non-empty string", hint="e.g. --stop '\\n\\n'")


@dataclass
class TextOutput:
    text: str
    prompt: str
    index: int
    seed: int
    new_tokens: int
    seconds: float
    metadata: dict[str, Any]
    speculative: SpecStats | None = None


class StopWatcher:
    """Finds stop strings in decoded text; holds back a tail that may still become one, so that
    streamed text never shows part of a stop string."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1

    def cut(self, text: str) -> tuple[str, bool]:
        """(text up to the earliest stop string, whether one was found)."""
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return (text[: min(hits)], True) if hits else (text, False)

    def safe(self, text: str) -> str:
        """The prefix of ``text`` that can be shown now."""
        cut, found = self.cut(text)
        return cut if found else text[: len(text) - self.hold] if self.hold else text


class TextPipeline:
    """``TextPipeline.from_pretrained("shakespeare-char")(TextRequest(["ROMEO:"]))``."""

    modality = "text"

    def __init__(self, model, tokenizer, info: dict[str, Any], ref: weights.ModelRef,
                 device: torch.device, compile: bool = False, quantize: str = "none") -> None:
        self.model, self.tokenizer, self.info, self.ref = model, tokenizer, info, ref
        self.device, self.compile, self.quantize = device, compile, quantize
        self.eos_id = info.get("eos_token_id")

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto", dtype: str = "auto",
                        compile: bool = False, quantize: str = "none") -> "TextPipeline":
        if quantize not in ("none", "int8"):
            raise UsageError(f"unknown --quantize {quantize!r}", hint="use none or int8")
        ref = weights.resolve(name_or_path or weights.default_model("text"), "text")
        model, info = load_transformer(ref.path)
        if info.get("modality") not in (None, "text"):
            raise ArgenError(f"{ref.name} is a {info['modality']} model", hint="pick a text model (see `argen models`)")
        if not info.get("tokenizer"):
            raise ArgenError(f"{ref.path} has no tokenizer.json", hint="copy the model's tokenizer.json into the folder")
        tokenizer = load_tokenizer(Path(info["tokenizer"]), eos_id=info.get("eos_token_id"))
        dev = resolve_device(device)
        # int8 weights pair with bf16 activations in PyTorch's fast CPU kernel
        dt = torch.bfloat16 if quantize == "int8" and dtype == "auto" and dev.type == "cpu" else resolve_dtype(dtype, dev)
        model = model.to(device=dev, dtype=dt)
        if quantize == "int8":
            from argen.models.quantize import quantize_int8

            model = quantize_int8(model)
        return cls(model, tokenizer, info, ref, dev, compile, quantize)

    @property
    def context(self) -> int:
        return self.model.cfg.max_seq_len

    def _check_length(self, ids: list[int], max_new: int) -> None:
        if len(ids) > self.context:
            raise UsageError(f"the prompt is {len(ids)} tokens, longer than the model's context ({self.context})",
                             hint="shorten the prompt")
        if self.model.cfg.pos_emb == "learned" and len(ids) + max_new > self.context:
            raise UsageError(f"prompt ({len(ids)}) + --max-new-tokens ({max_new}) exceeds this model's fixed "
                             f"context of {self.context} tokens", hint=f"use --max-new-tokens {self.context - len(ids)} or less")

    def _load_draft(self, req: TextRequest):
        """The draft model (on the target's device and dtype) and its reference, or (None, None)."""
        if not req.draft:
            return None, None
        ref = weights.resolve(req.draft, "text")
        draft, _ = load_transformer(ref.path)
        if draft.cfg.vocab_size != self.model.cfg.vocab_size:
            raise ArgenError(f"draft model {ref.name} has {draft.cfg.vocab_size} tokens, the target {self.model.cfg.vocab_size}",
                             hint="a draft model must share the target's tokenizer")
        return draft.to(device=self.device, dtype=self.model.embed.weight.dtype), ref

    @torch.inference_mode()
    def __call__(self, req: TextRequest) -> list[TextOutput]:
        # 1. encode and check the prompts
        encoded = [self.tokenizer.encode(p) for p in req.prompts]
        for ids in encoded:
            if not ids:
                raise UsageError("the prompt encodes to no tokens", hint="give a longer prompt")
            self._check_length(ids, req.max_new_tokens)
        # 2. expand samples (prompt, ids, seed): sample i of each prompt uses seed + i
        if req.seeds is not None:
            jobs = list(zip(req.prompts, encoded, req.seeds))
        else:
            base_seed = req.seed if req.seed is not None else random.randrange(2**31)
            jobs = [(p, ids, base_seed + i) for p, ids in zip(req.prompts, encoded) for i in range(req.num_samples)]
        watcher = StopWatcher(req.stop)
        stream = req.on_text if len(jobs) == 1 else None
        window = self.context if self.model.cfg.pos_emb == "rope" else None

        tail = max((len(x) for x in req.stop), default=0) + 8  # tokens; each decodes to >= 1 char, bar fragments

        def stop_fn(row: int, new: list[int]) -> bool:
            # a stop string can only have just appeared at the end: decode the tail, not everything
            return bool(req.stop) and watcher.cut(self.tokenizer.decode(new[-tail:]))[1]

        shown = [""]
        new_tokens: list[int] = []

        def on_token(tok: torch.Tensor) -> None:
            new_tokens.append(int(tok[0]))
            text = watcher.safe(self.tokenizer.decode(self._strip_eos(new_tokens)))
            if len(text) > len(shown[0]) and text.startswith(shown[0]):
                stream(text[len(shown[0]):])
                shown[0] = text

        # 3. sample
        t0 = time.time()
        stats: list[SpecStats | None] = [None] * len(jobs)
        draft_model, draft_ref = self._load_draft(req)
        if req.draft or req.lookup:
            results = []
            for j, (_, ids, seed) in enumerate(jobs):
                capacity = min(len(ids) + req.max_new_tokens + req.draft_tokens + 1, window or 1 << 62)
                if draft_model is not None and window is not None and draft_model.cfg.pos_emb != "rope":
                    raise ArgenError("the draft model has learned positions; it cannot follow a sliding window",
                                     hint="use a RoPE draft model, or --lookup")
                drafter = ModelDrafter(draft_model, req.sampling, capacity) if draft_model else LookupDrafter(req.lookup)
                gen = torch.Generator(device=self.device).manual_seed(seed)
                out, stats[j] = speculative_generate(
                    self.model, ids, req.max_new_tokens, drafter, req.sampling, k=req.draft_tokens,
                    generator=None if req.sampling.greedy else gen, eos_id=self.eos_id,
                    stop=stop_fn, on_token=on_token if stream else None, window=window)
                results.append(out)
        else:
            gens = None if req.sampling.greedy else [
                torch.Generator(device=self.device).manual_seed(seed) for _, _, seed in jobs]
            results = generate(self.model, [ids for _, ids, _ in jobs], req.max_new_tokens, req.sampling,
                               generators=gens, eos_id=self.eos_id, stop=stop_fn if req.stop else None,
                               on_token=on_token if stream else None, compile=self.compile, window=window)
        seconds = time.time() - t0
        # 4. decode, cut at stop strings, flush the stream
        outputs = []
        for j, ((prompt, ids, seed), toks) in enumerate(zip(jobs, results)):
            text, _ = watcher.cut(self.tokenizer.decode(self._strip_eos(toks)))
            if stream and len(text) > len(shown[0]):
                stream(text[len(shown[0]):])
            meta = self._metadata(req, prompt, seed, len(toks), draft_ref)
            outputs.append(TextOutput(text=text, prompt=prompt, index=j, seed=seed, new_tokens=len(toks),
                                      seconds=seconds, metadata=meta, speculative=stats[j]))
        return outputs

    def _strip_eos(self, toks: list[int]) -> list[int]:
        return toks[:-1] if toks and self.eos_id is not None and toks[-1] == self.eos_id else toks

    def _metadata(self, req: TextRequest, prompt: str, seed: int, n_tokens: int, draft_ref) -> dict[str, Any]:
        return build_metadata(
            modality="text", prompt=prompt, seed=seed, model=self.ref.name, model_sha256=weights.digest(self.ref),
            model_path=None if self.ref.bundled else str(self.ref.path), sampler="next-token",
            sampling=req.sampling.to_dict(), max_new_tokens=req.max_new_tokens, new_tokens=n_tokens,
            stop=req.stop or None, draft=(draft_ref.name if draft_ref else None),
            lookup=req.lookup, quantize=None if self.quantize == "none" else self.quantize,
            device=str(self.device), dtype=str(self.model.embed.weight.dtype).replace("torch.", ""))
