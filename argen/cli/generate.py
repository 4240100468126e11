"""What every generating command does, whatever its modality: read the prompts, check the flags
(the spec) and every output path, load the pipeline, generate batch by batch with a progress bar,
write each finished output, print its path (or a JSON line), log a summary.

The command is a thin layer over the Python API: it calls the same ``Pipeline.generate`` and
``Output.save`` that ``argen.load(...)(...)`` users call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from argen.cli.output import expand_output, log, sheet_path
from argen.cli.spec_options import IO_NAMES, flag_names
from argen.errors import ArgenError, UsageError
from argen.modalities.base import make_spec, plan_rows
from argen.modalities.registry import MODALITIES, spec_of


def unescape(s: str) -> str:
    """``\\n``, ``\\t`` and ``\\\\`` typed in a shell flag become a newline, a tab, a backslash."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def read_prompt_file(path: Path, mode: str) -> list[str]:
    """``--prompt-file``: the whole file as one prompt, or one prompt per non-empty line; ``-`` is stdin."""
    from argen.io.files import decode_utf8, read_utf8

    if str(path) == "-":
        try:
            text = decode_utf8(sys.stdin.buffer.read(), "standard input") if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        except OSError as e:
            raise ArgenError(f"cannot read the prompt from standard input: {e.strerror or e}", hint="pass a text file") from None
    else:
        text = read_utf8(path, "--prompt-file", hint="pass a UTF-8 text file, one prompt per line")
    prompts = [text] if mode == "whole" else [line for line in text.splitlines() if line.strip()]
    if not prompts or not any(p.strip() for p in prompts):
        raise UsageError(f"--prompt-file {path} holds no prompt", hint="write one prompt per line")
    return prompts


def gather_prompts(prompts: list[str] | None, prompt_file: Path | None, mode: str, needs_prompt: bool) -> list[str] | None:
    """--prompt (repeatable), --prompt-file, or stdin when a prompt is needed and none was typed."""
    if prompts and prompt_file is not None:
        raise UsageError("give --prompt or --prompt-file, not both", hint="drop one of them")
    if prompt_file is not None:
        return read_prompt_file(prompt_file, mode)
    if prompts or not needs_prompt:
        return prompts or None
    try:
        piped = not sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        piped = False
    if piped:
        return read_prompt_file(Path("-"), mode)
    return None


class OutputPaths:
    """Where output i (with its seed and prompt) goes: an -o pattern with {i} and {seed}, or a
    folder (``out/``), where each output takes ``<stem>-<seed><suffix>``."""

    def __init__(self, pattern: str, modality: str, count: int) -> None:
        m = MODALITIES[modality]
        self.folder = pattern.endswith(("/", "\\")) or Path(pattern).is_dir()
        self.modality, self.suffix = modality, m.suffixes[0]
        self.pattern = expand_output(Path(pattern), count) if not self.folder else None
        if self.pattern is not None and m.suffixes != (".txt",) and Path(pattern).suffix.lower() not in m.suffixes:
            raise UsageError(f"-o {pattern}: {modality} outputs are {', '.join(m.suffixes)} files",
                             hint=f"give a path ending in {' or '.join(m.suffixes)}" + (" or a folder/" if modality == "crystal" else ""))
        self.root = Path(pattern)

    def __call__(self, index: int, seed: int, prompt: str | None) -> Path:
        if self.pattern is not None:
            return self.pattern(index, seed)
        stem = (prompt or "").strip() if self.modality == "crystal" else self.modality
        return self.root / f"{stem}-{seed}{self.suffix}"


def either(names) -> str:
    """"A", "A or B", "A, B or C"."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def run_generation(modality: str, values: dict[str, Any]) -> int:
    """The body of `argen <modality>`: ``values`` are the parsed options (spec fields + IO options)."""
    m, spec_cls = MODALITIES[modality], spec_of(modality)
    io = {k: values.pop(k) for k in list(values) if k in IO_NAMES}
    if modality == "image" and values.get("class_label"):
        if values.get("prompt"):
            raise UsageError("give --prompt or --class-label, not both", hint="class labels are the prompts of class models")
        values["prompt"] = values.pop("class_label")
    needs = spec_cls.prompt_needed(values)
    values["prompt"] = gather_prompts(values.get("prompt"), io["prompt_file"], spec_cls.prompt_file_mode, needs)
    if modality == "text":
        values["stop"] = [unescape(s) for s in values.get("stop") or []]
    spec = make_spec(spec_cls, values, flag_names(spec_cls))
    if spec.prompt is None and needs:
        raise UsageError(spec_cls.missing_prompt_message, hint=f"see `argen {modality} --help`")
    rows = plan_rows(spec.prompt, spec.n, spec.seed)
    pattern = io["output"] if io["output"] is not None else m.output
    paths = OutputPaths(pattern, modality, len(rows)) if pattern else None
    previews = expand_output(Path(spec.preview), len(rows)) if getattr(spec, "preview", None) else None
    if previews is not None and Path(spec.preview).suffix.lower() not in spec_cls.preview_suffixes:
        raise UsageError(f"--preview {spec.preview}: previews are written as {either(s[1:].upper() for s in spec_cls.preview_suffixes)}",
                         hint=f"give a path ending in {either(spec_cls.preview_suffixes)}")
    overwrite = io["overwrite"]
    check_outputs(rows, modality, paths, previews, overwrite, pattern if getattr(spec, "grid", False) else None)
    from argen.cli.progress import progress_bar
    from argen.modalities.loading import load

    options = {k: v for k, v in spec.load_options().items() if k not in ("model", "device", "dtype", "compile")}
    pipe = load(spec.model, modality, device=spec.device, dtype=spec.dtype, compile=spec.compile, **options)
    job = pipe.prepare(spec, rows)  # flags and prompts checked against this model
    quiet, as_json = io["quiet"], io["json_out"]
    stream = modality == "text" and paths is None and spec.stream and not as_json and len(rows) == 1
    extra = {}
    if stream:
        def write_out(s: str) -> None:
            sys.stdout.write(s)
            sys.stdout.flush()

        extra["on_text"] = write_out
        if spec.echo:
            write_out(spec.prompt[0])
    outs, written = [], 0
    with progress_bar(quiet or stream) as on_progress:
        for out in pipe.generate(spec, rows, on_progress, prepared=job, **extra):
            outs.append(out)
            written += emit(out, spec, paths, previews, overwrite, as_json, stream, len(rows), quiet)
    if getattr(spec, "grid", False) and outs and paths is not None:
        from argen.io.png import write_png
        from argen.io.sheet import captioned_sheet

        sheet = write_png(sheet_path(Path(pattern)), captioned_sheet([o.pixels for o in outs], [[f"seed {o.seed}"] for o in outs]),
                          {**outs[0].metadata, "seeds": [o.seed for o in outs]})
        print(json.dumps({"grid": str(sheet)}) if as_json else sheet)
    log(pipe.summary(outs), quiet)
    pipe.finish(outs, spec, written, quiet)
    return 0


def check_outputs(rows, modality: str, paths, previews, overwrite: bool, grid_pattern: str | None) -> None:
    """Every file the command would write can be written (and replaces nothing unless
    ``overwrite``): checked before the model is even loaded."""
    from argen.io.atomic import check_writable
    from argen.io.metadata import written_files

    seen: set[Path] = set()
    for r in rows:
        out = paths(r.index, r.seed, r.prompt) if paths is not None else None
        targets = written_files(out, plain_text=modality == "text") if out is not None else []
        targets += [previews(r.index, r.seed)] if previews is not None else []
        for t in targets:
            if t in seen:
                raise UsageError(f"two outputs would be written to {t}", hint="put {i} or {seed} in the -o pattern")
            seen.add(t)
            check_writable(t, overwrite)
    if grid_pattern is not None and paths is not None and not paths.folder:
        check_writable(sheet_path(Path(grid_pattern)), overwrite)


def emit(out, spec, paths, previews, overwrite: bool, as_json: bool, streamed: bool, total: int, quiet: bool) -> int:
    """Write one output (and its preview) and print it; returns 1 if a file was written."""
    if out.skip_reason:
        return 0
    path = out.save(paths(out.index, out.seed, out.prompt), overwrite=overwrite) if paths is not None else None
    record = {"path": str(path) if path else None, **out.record()}
    if previews is not None:
        record["preview"] = str(out.save_preview(previews(out.index, out.seed), overwrite=overwrite))
    if as_json:
        print(json.dumps(record, ensure_ascii=False), flush=True)
    elif path is not None:
        print(path, flush=True)
        if previews is not None:
            print(record["preview"], flush=True)
    elif streamed:
        print()
    else:
        if total > 1:
            log(f"--- sample {out.index + 1}/{total} (seed {out.seed}) ---", quiet)
        print(out.text, flush=True)
    return 1 if path is not None else 0
