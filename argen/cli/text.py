"""Generate text with a language model (bundled default: shakespeare-char).

The prompt comes from --prompt, --prompt-file, or stdin. Text streams to stdout as it is made;
-o writes it to a file with its generation metadata beside it (FILE.meta.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import expand_output, log


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    from argen.errors import ArgenError, UsageError

    if prompt is not None and prompt_file is not None:
        raise UsageError("give --prompt or --prompt-file, not both", hint="drop one of them")
    if prompt_file is not None:
        try:
            return prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ArgenError(f"cannot read prompt file {prompt_file}: {getattr(e, 'strerror', None) or e}",
                             hint="pass a UTF-8 text file") from None
    if prompt is not None:
        return prompt
    if not sys.stdin.isatty():
        return sys.stdin.read()
    raise UsageError("no prompt given", hint="use --prompt TEXT, --prompt-file FILE, or pipe text on stdin")


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


def text(
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="The text to continue.")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option("--prompt-file", help="Read the prompt from a file.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens to generate per sample.")] = 500,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Softmax temperature; 0 is greedy.")] = 0.8,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Keep the k most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass, in (0, 1].")] = None,
    min_p: Annotated[Optional[float], typer.Option("--min-p", help="Drop tokens below min-p x the top probability.")] = None,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", help="CTRL penalty; 1 disables.")] = 1.0,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help="Stop at this string (repeatable; \\n and \\t understood).")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="Samples per prompt (seeds S, S+1, ...).")] = 1,
    draft: Annotated[Optional[str], typer.Option("--draft", metavar="MODEL", help="Speculative decoding with this draft model.")] = None,
    lookup: Annotated[Optional[int], typer.Option("--lookup", metavar="N", help="Speculative decoding with prompt-lookup n-grams up to N.")] = None,
    draft_tokens: Annotated[int, typer.Option("--draft-tokens", help="Tokens drafted per speculative step.")] = 4,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print tokens as they are made.")] = True,
    echo: Annotated[bool, typer.Option("--echo", help="Print (and write) the prompt before the continuation.")] = False,
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    compile: opt.Compile = False,
    quantize: opt.Quantize = "none",
    output: opt.Output = None,
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    from argen.io.text import write_text
    from argen.pipelines.text import TextPipeline, TextRequest
    from argen.samplers.processors import SamplingConfig

    prompt_text = read_prompt(prompt, prompt_file)
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                              repetition_penalty=repetition_penalty)
    live = stream and output is None and not json_out
    req = TextRequest(prompts=[prompt_text], max_new_tokens=max_new_tokens, sampling=sampling,
                      num_samples=num_samples, seed=seed, stop=[unescape(x) for x in stop or []], draft=draft, lookup=lookup,
                      draft_tokens=draft_tokens,
                      on_text=(lambda s: (sys.stdout.write(s), sys.stdout.flush())) if live else None)
    paths = expand_output(output, num_samples) if output is not None else None
    pipe = TextPipeline.from_pretrained(model, device=device, dtype=dtype, compile=compile, quantize=quantize)
    if live and echo and num_samples == 1:
        sys.stdout.write(prompt_text)
    outs = pipe(req)
    for j, out in enumerate(outs):
        full = (out.prompt + out.text) if echo else out.text
        path = None
        if paths is not None:
            path = write_text(paths(j, out.seed), full, out.metadata)
        if json_out:
            rec = {"text": full, "prompt": out.prompt, "seed": out.seed, "new_tokens": out.new_tokens,
                   "path": str(path) if path else None, "model": out.metadata.get("model")}
            if out.speculative:
                rec["acceptance_rate"] = round(out.speculative.acceptance_rate, 4)
            print(json.dumps(rec, ensure_ascii=False))
        elif path is not None:
            print(path)
        elif live and len(outs) == 1:
            print()  # the text itself was streamed
        else:
            if len(outs) > 1:
                log(f"--- sample {j + 1}/{len(outs)} (seed {out.seed}) ---", quiet)
            print(full)
    if outs:
        o = outs[0]
        total = sum(x.new_tokens for x in outs)
        msg = f"{total} tokens in {o.seconds:.2f} s ({total / max(o.seconds, 1e-9):.1f} tokens/s), seed {o.seed}"
        if o.speculative:
            msg += f", draft acceptance {o.speculative.acceptance_rate:.0%}"
        log(msg, quiet)
