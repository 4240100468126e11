"""Text generation: prompt -> tokens -> the engine's sampler -> text (+ metadata)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from argen.checkpoints import resolve as weights
from argen.checkpoints.loader import load_transformer
from argen.engine.device import resolve_device, resolve_dtype
from argen.engine.quantize import check_mode, quantize_weights
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.sampling.speculative import LookupDrafter, ModelDrafter, SpecStats, speculative_generate
from argen.engine.sampling.window import ContextWindow
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Output, Pipeline, Row, quantize_record, refuse_options
from argen.modalities.text.spec import TextSpec
from argen.modalities.text.tokenizer import load_tokenizer


def encode_prompt(tokenizer, prompt: str | None, room: int, context: int | None = None) -> list[int]:
    """A text prompt's ids, or one-line errors: empty, no tokens, more than ``room`` tokens (of a
    ``context``, default ``room``, that must also hold what is generated)."""
    if not prompt:
        raise UsageError("the prompt is empty", hint="give --prompt TEXT, --prompt-file FILE, or text on stdin")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise UsageError("the prompt encodes to no tokens", hint="give a longer prompt")
    if len(ids) > room:
        fits = f"the model's context ({room})" if context is None else f"the {room} tokens the model's context ({context}) leaves"
        raise UsageError(f"the prompt is {len(ids)} tokens, longer than {fits}", hint="shorten the prompt")
    return ids


@dataclass
class TextOutput(Output):
    text: str = ""
    new_tokens: int = 0
    speculative: SpecStats | None = None

    suffixes: ClassVar[tuple[str, ...]] = ()  # any name: plain text

    def write(self, path: Path) -> Path:
        from argen.io.text import write_text

        return write_text(path, self.text, self.metadata)

    def record(self) -> dict[str, Any]:
        rec = {"text": self.text, "prompt": self.prompt, "seed": self.seed, "new_tokens": self.new_tokens,
               "model": self.metadata.get("model")}
        if self.speculative:
            rec["acceptance_rate"] = round(self.speculative.acceptance_rate, 4)
        return rec


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


class TextPipeline(Pipeline):
    """A language model: ``argen.load("shakespeare-char")("ROMEO:", max_new_tokens=100, seed=0)``."""

    modality = "text"
    default_batch_size = 8
    sampling_flags = {**Pipeline.sampling_flags, "min_p": "min_p", "repetition_penalty": "repetition_penalty"}

    def __init__(self, model, tokenizer, info: dict[str, Any], ref: weights.ModelRef,
                 device: torch.device, compile: bool = False, quantize: str = "none") -> None:
        self.model, self.tokenizer, self.info, self.ref = model, tokenizer, info, ref
        self.device, self.compile, self.quantize = device, compile, quantize
        self.eos_id = info.get("eos_token_id")
        self.sampling_defaults = {"temperature": 0.8, **((info.get("config") or {}).get("sampling") or {})}
        self.on_text: Callable[[str], None] | None = None  # streaming of a single sample (the CLI sets it)

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        from argen.checkpoints.hf_convert import is_hf_folder

        if config is None:
            return False
        return config.get("modality") == "text" if config.get("format") == "argen" else is_hf_folder(path)

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 quantize: str = "none", sampler: str | None = None, **options: Any) -> "TextPipeline":
        if sampler == "block-diffusion":
            raise UsageError(f"{ref.name} is an autoregressive model; block diffusion needs a model trained for it",
                             hint="leave out --sampler, or pick a block-diffusion model (e.g. shakespeare-bd3)")
        refuse_options(options, "text")
        check_mode(quantize)
        model, info = load_transformer(ref.path)
        if info.get("modality") not in (None, "text"):
            raise ArgenError(f"{ref.name} is a {info['modality']} model", hint="pick a text model (see `argen models`)")
        if not info.get("tokenizer"):
            raise ArgenError(f"{ref.path} has no tokenizer.json", hint="copy the model's tokenizer.json into the folder")
        tokenizer = load_tokenizer(Path(info["tokenizer"]), eos_id=info.get("eos_token_id"))
        dev = resolve_device(device)
        model = quantize_weights(model.to(device=dev, dtype=resolve_dtype(dtype, dev, quantize)), quantize)
        return cls(model, tokenizer, info, ref, dev, compile, quantize)

    def default_sampling(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig(**{**self.sampling_defaults, **{k: v for k, v in overrides.items() if v is not None}})

    def check(self, spec: TextSpec) -> None:
        given = [f for f, v in (("--block-size", spec.block_size), ("--steps", spec.steps),
                                ("--threshold", spec.threshold), ("--unmask", spec.unmask)) if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: block-diffusion settings, and {self.name} is an autoregressive model",
                             hint="drop them, or pick a block-diffusion model (e.g. shakespeare-bd3)")
        if spec.draft and spec.lookup:
            raise UsageError("--draft and --lookup are two kinds of drafts; pick one", hint="drop one of them")
        if any(s == "" for s in spec.stop):
            raise UsageError("--stop needs a non-empty string", hint="e.g. --stop '\\n\\n'")
        if (spec.draft or spec.lookup) and spec.cfg not in (None, 1.0):
            raise UsageError("--cfg does not combine with speculative decoding", hint="drop --cfg, or --draft/--lookup")

    @property
    def context(self) -> int:
        return self.model.cfg.max_seq_len

    def check_prompt(self, prompt: str | None) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.context)

    def _load_draft(self, spec: TextSpec):
        """The draft model (on the target's device and dtype) and its reference, or (None, None)."""
        if not spec.draft:
            return None, None
        ref = weights.resolve(spec.draft, "text")
        draft, _ = load_transformer(ref.path)
        if draft.cfg.vocab_size != self.model.cfg.vocab_size:
            raise ArgenError(f"draft model {ref.name} has {draft.cfg.vocab_size} tokens, the target {self.model.cfg.vocab_size}",
                             hint="a draft model must share the target's tokenizer")
        return draft.to(device=self.device, dtype=self.model.embed.weight.dtype), ref

    def generate(self, spec: TextSpec, rows: list[Row] | None = None, on_progress: OnProgress | None = None,
                 prepared=None, on_text: Callable[[str], None] | None = None) -> Iterator[TextOutput]:
        """As :meth:`Pipeline.generate`; ``on_text`` streams the text of a single sample as it is made."""
        self.on_text = on_text
        return super().generate(spec, rows, on_progress, prepared)

    @torch.inference_mode()
    def generate_batch(self, spec: TextSpec, rows: list[Row], prepared: dict, sampling: SamplingConfig,
                       on_progress: OnProgress | None = None) -> list[TextOutput]:
        jobs = [(r.prompt, prepared[r.prompt], r.seed) for r in rows]
        for _, ids, _ in jobs:
            if self.model.cfg.pos_emb == "learned" and len(ids) + spec.max_new_tokens > self.context:
                raise UsageError(f"prompt ({len(ids)}) + --max-new-tokens ({spec.max_new_tokens}) exceeds this model's "
                                 f"fixed context of {self.context} tokens",
                                 hint=f"use --max-new-tokens {self.context - len(ids)} or less")
        stops = list(spec.stop)
        watcher = StopWatcher(stops)
        stream = self.on_text if len(jobs) == 1 and rows[0].index == 0 else None
        window = self.context if self.model.cfg.pos_emb == "rope" else None
        tail = max((len(x) for x in stops), default=0) + 8  # tokens; each decodes to >= 1 char, bar fragments

        def stop_fn(row: int, new: list[int]) -> bool:
            # a stop string can only have just appeared at the end: decode the tail, not everything
            return bool(stops) and watcher.cut(self.tokenizer.decode(new[-tail:]))[1]

        shown = [""]
        new_tokens: list[int] = []
        done_tokens = [0]

        def on_token(tok: torch.Tensor) -> None:
            if on_progress is not None:
                done_tokens[0] += 1
                on_progress(done_tokens[0], spec.max_new_tokens, "tokens")
            if stream is None:
                return
            new_tokens.append(int(tok[0]))
            text = watcher.safe(self.tokenizer.decode(self._strip_eos(new_tokens)))
            if len(text) > len(shown[0]) and text.startswith(shown[0]):
                stream(text[len(shown[0]):])
                shown[0] = text

        t0 = time.time()
        stats: list[SpecStats | None] = [None] * len(jobs)
        draft_model, draft_ref = self._load_draft(spec)
        hook = on_token if (stream or on_progress) else None
        if spec.draft or spec.lookup:
            results = []
            for j, (_, ids, seed) in enumerate(jobs):
                capacity = min(len(ids) + spec.max_new_tokens + spec.draft_tokens + 1, window or 1 << 62)
                if draft_model is not None and window is not None and draft_model.cfg.pos_emb != "rope":
                    raise ArgenError("the draft model has learned positions; it cannot follow a sliding window",
                                     hint="use a RoPE draft model, or --lookup")
                drafter = (ModelDrafter(draft_model, sampling, capacity, compile=self.compile) if draft_model
                           else LookupDrafter(spec.lookup))
                gen = torch.Generator(device=self.device).manual_seed(seed)
                out, stats[j] = speculative_generate(
                    self.model, ids, spec.max_new_tokens, drafter, sampling, k=spec.draft_tokens,
                    generator=None if sampling.greedy else gen, eos_id=self.eos_id,
                    stop=stop_fn, on_token=hook, window=None if window is None else ContextWindow(window),
                    compile=self.compile)
                results.append(out)
        else:
            gens = None if sampling.greedy else [torch.Generator(device=self.device).manual_seed(seed) for _, _, seed in jobs]
            # guidance for language models (Sanchez et al. 2023): the unconditional twin reads only the
            # prompt's last token
            uncond = [ids[-1:] for _, ids, _ in jobs] if sampling.guided else None
            results = generate(self.model, [ids for _, ids, _ in jobs], spec.max_new_tokens, sampling,
                               generators=gens, eos_id=self.eos_id, stop=stop_fn if stops else None,
                               on_token=hook, compile=self.compile, rules=token_rules(uncond_prompts=uncond),
                               window=None if window is None else ContextWindow(window))
        seconds = time.time() - t0
        outputs = []
        for j, ((prompt, _ids, seed), toks) in enumerate(zip(jobs, results)):
            text, _ = watcher.cut(self.tokenizer.decode(self._strip_eos(toks)))
            if stream and len(text) > len(shown[0]):
                stream(text[len(shown[0]):])
            if spec.echo:
                text = prompt + text
            meta = self._metadata(spec, sampling, stops, prompt, seed, len(toks), draft_ref)
            outputs.append(TextOutput(index=rows[j].index, seed=seed, prompt=prompt, seconds=seconds, metadata=meta,
                                      text=text, new_tokens=len(toks), speculative=stats[j]))
        return outputs

    def summary(self, outputs: list[Output]) -> str:
        if not outputs:
            return "no text"
        o, total = outputs[0], sum(x.new_tokens for x in outputs)
        seconds = max(x.seconds for x in outputs)
        msg = f"{total} tokens in {seconds:.2f} s ({total / max(seconds, 1e-9):.1f} tokens/s), seed {o.seed}"
        if o.speculative:
            msg += f", draft acceptance {o.speculative.acceptance_rate:.0%}"
        return msg

    def _strip_eos(self, toks: list[int]) -> list[int]:
        return toks[:-1] if toks and self.eos_id is not None and toks[-1] == self.eos_id else toks

    def _metadata(self, spec: TextSpec, sampling: SamplingConfig, stops: list[str], prompt: str, seed: int,
                  n_tokens: int, draft_ref) -> dict[str, Any]:
        return build_metadata(
            modality="text", prompt=prompt, seed=seed, model=self.ref.name, model_sha256=weights.digest(self.ref),
            model_path=None if self.ref.bundled else str(self.ref.path), sampler="next-token",
            sampling=sampling.to_dict(), max_new_tokens=spec.max_new_tokens, new_tokens=n_tokens,
            stop=stops or None, draft=(draft_ref.name if draft_ref else None),
            lookup=spec.lookup, quantize=quantize_record(self.quantize),
            device=str(self.device), dtype=str(self.model.embed.weight.dtype).replace("torch.", ""))
