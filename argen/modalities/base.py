"""What every modality's pipeline shares: rows (prompt x seed), batching, sampling defaults,
the Python call, and outputs that save themselves with their metadata.

A modality's pipeline subclasses :class:`Pipeline` and implements ``matches`` (is this model
folder one of mine?), ``from_ref`` (build from a resolved model) and ``generate_batch`` (one
batch of rows -> outputs). The CLI, batch recipes and ``argen.load(...)(prompt, ...)`` all go
through :meth:`Pipeline.generate`, so they give the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from argen.errors import UsageError
from argen.modalities.spec import GenerationSpec

# (units done, units in all, unit name) after each step of work, for progress bars
OnProgress = Callable[[int, int, str], None]
LOAD_FLAGS = ("model", "device", "dtype", "compile", "quantize", "sampler")  # given to argen.load, not to a call


def ticker(on_progress: OnProgress | None, total: int, unit: str):
    """An engine ``on_token`` callback that reports each step to ``on_progress`` (None: no callback)."""
    if on_progress is None:
        return None
    done = [0]

    def tick(_tokens) -> None:
        done[0] += 1
        on_progress(done[0], total, unit)

    return tick


@dataclass(frozen=True)
class Row:
    """One output: its index over the whole request, its prompt and its seed."""

    index: int
    prompt: str | None
    seed: int


def plan_rows(prompts: list[str] | None, n: int, seed: int | None) -> list[Row]:
    """Every output of a request: each prompt ``n`` times; output i has seed ``seed + i``."""
    base = seed if seed is not None else random.randrange(2**31)
    return [Row(i, p, base + i) for i, p in enumerate(p for p in (prompts or [None]) for _ in range(n))]


@dataclass
class Prepared:
    """A checked request: its rows, what each prompt became (ids, a label...) and the sampling settings."""

    rows: list[Row]
    prompts: dict[str | None, Any]
    sampling: Any


@dataclass
class Output:
    """One generated sample. Subclasses add the content (``image``, ``text``, ``samples``...)
    and implement :meth:`write`; :meth:`save` adds the overwrite policy."""

    index: int
    seed: int
    prompt: str | None
    seconds: float  # compute time per sample of its batch
    metadata: dict[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None  # set when the sample is not to be written (e.g. a failed check)

    suffixes: ClassVar[tuple[str, ...]] = ()
    preview_suffixes: ClassVar[tuple[str, ...]] = (".png",)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the sample with its generation metadata (atomically). An existing file (or
        metadata sidecar) is kept and reported unless ``overwrite``."""
        from argen.io.atomic import check_writable
        from argen.io.metadata import written_files

        path = Path(path)
        check_writable(path, overwrite, self.suffixes)
        for extra in written_files(path, plain_text=not self.suffixes)[1:]:  # text: any name
            check_writable(extra, overwrite)
        return self.write(path)

    def write(self, path: Path) -> Path:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def save_preview(self, path: str | Path, overwrite: bool = False) -> Path:
        """A picture of the sample (spectrogram, rendering, cell, contact sheet), with its metadata."""
        from argen.io.atomic import check_writable

        path = Path(path)
        check_writable(path, overwrite, self.preview_suffixes)
        return self.write_preview(path)

    def write_preview(self, path: Path) -> Path:
        raise UsageError("this output has no preview", hint="drop --preview")

    def record(self) -> dict[str, Any]:
        """The fields of this sample's ``--json`` line (the path is added by the caller)."""
        return {"seed": self.seed, "prompt": self.prompt, "model": self.metadata.get("model")}


class Pipeline:
    """Base of every pipeline: ``pipe(prompt, n=2, seed=0) -> [Output, ...]``."""

    modality: ClassVar[str] = ""
    default_batch_size: ClassVar[int] = 8
    # spec field -> SamplingConfig field, for the sampling flags this pipeline reads
    sampling_flags: ClassVar[dict[str, str]] = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                                                "cfg": "cfg_scale"}

    ref: Any = None  # the resolved model (argen.checkpoints.registry.ModelRef)
    use_cache: bool = True  # False recomputes every step (the reference cached decoding is tested against)
    # --compile: next-token families give it to the loop (on CUDA: a static cache and a CUDA-graph
    # decode step, argen/engine/sampling/step.py graph_decoder); others refuse it (refuse_compile)
    compile: bool = False

    # argen-format families: the config.json section their models carry (e.g. "image"); None: any
    argen_section: ClassVar[str | None] = None

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        """Whether the model at ``path`` (its config.json, or None for a single file) is this
        pipeline's family. Read from the config, never from a file name. The default: argen's own
        format for this modality."""
        return is_argen_model(config, cls.modality, cls.argen_section)

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto", **options: Any) -> "Pipeline":
        """``argen.load(name_or_path, <this modality>, device=device, **options)``."""
        from argen.modalities.loading import load

        return load(name_or_path, cls.modality, device=device, **options)

    @classmethod
    def from_ref(cls, ref, config: dict[str, Any] | None, device: str, dtype: str, compile: bool,
                 **options: Any) -> "Pipeline":
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.ref.name if self.ref is not None else "in-memory"

    # --- sampling ------------------------------------------------------------------------------
    def default_sampling(self, **overrides: Any):
        """The model's sampling settings with ``overrides`` that are not None (subclasses)."""
        raise NotImplementedError

    def sampling(self, spec: GenerationSpec):
        """The SamplingConfig a request samples with: the model's defaults, then the flags set."""
        return self.default_sampling(**{dst: getattr(spec, src) for src, dst in self.sampling_flags.items()})

    def check(self, spec: GenerationSpec) -> None:
        """Refuse flags this family cannot honour, before any work (subclasses extend it)."""

    def check_prompt(self, prompt: str | None) -> Any:
        """Validate one prompt (grammar, length); returns what generate_batch needs of it."""
        return prompt

    # --- generating ----------------------------------------------------------------------------
    def prepare(self, spec: GenerationSpec, rows: list[Row] | None = None) -> "Prepared":
        """Check a request before any work: its flags against this family, every prompt, the
        sampling settings. Returns what :meth:`generate` runs."""
        self.check(spec)
        rows = rows if rows is not None else plan_rows(spec.prompt, spec.n, spec.seed)
        prepared = {p: self.check_prompt(p) for p in dict.fromkeys(r.prompt for r in rows)}
        return Prepared(rows, prepared, self.sampling(spec))

    def generate(self, spec: GenerationSpec, rows: list[Row] | None = None,
                 on_progress: OnProgress | None = None, prepared: "Prepared | None" = None) -> Iterator[Output]:
        """Outputs of ``spec`` (or of explicit ``rows``, as batch recipes give), yielded batch by
        batch so that a caller can write each finished batch. Every prompt is checked first."""
        job = prepared if prepared is not None else self.prepare(spec, rows)
        size = spec.batch_size or self.default_batch_size
        for start in range(0, len(job.rows), size):
            yield from self.generate_batch(spec, job.rows[start:start + size], job.prompts, job.sampling, on_progress)

    def generate_batch(self, spec: GenerationSpec, rows: list[Row], prepared: dict, sampling,
                       on_progress: OnProgress | None) -> list[Output]:
        raise NotImplementedError

    def summary(self, outputs: list[Output]) -> str:
        """The statistics line a command logs after generating."""
        seconds = sum(o.seconds for o in outputs)
        return f"{len(outputs)} {self.modality} sample(s) in {seconds:.2f} s ({self.name})"

    def finish(self, outputs: list[Output], spec: GenerationSpec, written: int, quiet: bool) -> None:
        """After a command wrote what it could: warn about, or refuse, what it could not."""

    def __call__(self, prompt: str | list[str] | None = None, **flags: Any) -> list[Output]:
        """The Python API: ``pipe("a red circle", n=2, seed=0)``. Flags are the modality's spec
        fields (the CLI's flags with underscores); sampling flags left out keep the model's
        defaults, exactly as the CLI does."""
        from argen.modalities.registry import spec_of

        given = sorted(k for k in flags if k in LOAD_FLAGS)
        if given:
            raise UsageError(f"{', '.join(given)} are chosen when loading", hint="pass them to argen.load(...)")
        spec = make_spec(spec_of(self.modality), {"prompt": prompt, **flags})
        return list(self.generate(spec))


def is_argen_model(config: dict[str, Any] | None, modality: str, section: str | None = None) -> bool:
    """Whether a config.json is argen's own format for ``modality`` (with its ``section``, e.g. "image")."""
    return (bool(config) and config.get("format") == "argen" and config.get("modality") == modality
            and (section is None or section in config))


def refuse_options(options: dict[str, Any], modality: str, family: str | None = None) -> None:
    """Load options another family takes (``sampler``, ``quantize``...) are a usage error here;
    ``quantize="none"`` (every spec's default) is no request."""
    given = sorted(k for k, v in options.items() if not (k == "quantize" and v == "none"))
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        hint = ("--quantize is for autoregressive models whose decoder runs on argen's transformer; drop it"
                if "quantize" in given else f"see `argen {modality} --help`")
        raise UsageError(f"{family or modality} models take no {flags}", hint=hint)


def refuse_compile(compile: bool, name: str, sampler: str) -> None:
    """``--compile`` is for next-token decoding; a family that samples otherwise (next-scale,
    block diffusion, a diffusers pipeline) refuses it rather than ignore it."""
    if compile:
        raise UsageError(f"--compile is for next-token decoding; {name} samples {sampler}", hint="drop --compile")


def load_pretrained(model_cls, ref, device: str, dtype: str, options: dict[str, Any], modality: str, family: str):
    """A released family's model (``model_cls.from_pretrained(folder, device, dtype, quantize=...)``)
    from a resolved ``ref``, after refusing other families' options. The dtype is resolved for the
    ``quantize`` option (int8 weights: bfloat16 activations on CPU under ``--dtype auto``); the
    family quantises its decoder with :func:`argen.engine.quantize.quantize_weights`."""
    from argen.engine.device import resolve_device, resolve_dtype
    from argen.engine.quantize import check_mode

    options = dict(options)
    quantize = check_mode(options.pop("quantize", "none"))
    refuse_options(options, modality, family)
    dev = resolve_device(device)
    return model_cls.from_pretrained(ref.path, dev, resolve_dtype(dtype, dev, quantize), quantize=quantize)


def quantize_record(quantize: str) -> str | None:
    """The metadata value of ``--quantize`` (None, so left out, when not quantised)."""
    return None if quantize == "none" else quantize


def load_argen_transformer(ref, device: str, dtype: str, section: str | None = None, layout=None):
    """An argen-format model folder -> (transformer on its device and dtype, config.json, the
    ``layout`` dataclass read from config[section] (or None), the device)."""
    from argen.checkpoints.loader import load_transformer
    from argen.engine.device import resolve_device, resolve_dtype
    from argen.errors import ArgenError

    model, info = load_transformer(ref.path)
    meta = info.get("config") or {}
    lay = None
    if layout is not None:
        try:
            lay = layout.from_dict(meta[section]) if hasattr(layout, "from_dict") else layout(**meta[section])
        except (TypeError, ValueError, KeyError) as e:
            raise ArgenError(f"{ref.path / 'config.json'}: invalid {section} layout ({e})",
                             hint="the file is corrupt or from another tool") from None
    dev = resolve_device(device)
    return model.to(device=dev, dtype=resolve_dtype(dtype, dev)), meta, lay, dev


def sampling_flags(sampling) -> dict[str, Any]:
    """Spec flags that reproduce a SamplingConfig (for code that holds one, e.g. evaluations)."""
    if sampling is None:
        return {}
    return {"temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p,
            "cfg": sampling.cfg_scale}


def make_spec(spec_cls: type[GenerationSpec], values: dict[str, Any], flag_names: dict[str, str] | None = None):
    """Validate ``values`` into a spec; the first problem becomes one UsageError naming the flag
    (``flag_names``: field -> how the caller spells it, e.g. "--top-k"; else the field name)."""
    from pydantic import ValidationError

    try:
        return spec_cls.model_validate({k: v for k, v in values.items() if v is not None or k == "prompt"})
    except ValidationError as e:
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        name = (flag_names or {}).get(key, key)
        if err["type"] == "extra_forbidden":
            raise UsageError(f"{spec_cls.modality} has no flag {name!r}", hint=unknown_hint(spec_cls, key)) from None
        got = err.get("input")
        msg = err["msg"].replace("Value error, ", "")
        raise UsageError(f"{name} {got!r}: {msg[:1].lower()}{msg[1:]}" if key else msg,
                         hint=f"see `argen {spec_cls.modality} --help`") from None


def unknown_hint(spec_cls: type[GenerationSpec], key: str) -> str:
    """Suggest the nearest known flag for a misspelt one."""
    import difflib

    near = difflib.get_close_matches(key, list(spec_cls.model_fields), n=1)
    return f"did you mean {near[0]!r}?" if near else f"see `argen {spec_cls.modality} --help`"
