"""Writes docs/cli.md from every command's --help (tests/test_docs.py checks it is current):
`python docs/make_cli_reference.py > docs/cli.md`."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout

COMMANDS = [[], ["text"], ["image"], ["video"], ["audio"], ["mesh"], ["crystal"], ["run"], ["models"], ["info"],
            ["weights"], ["weights", "pull"], ["weights", "convert"], ["train"], ["eval"]]


def reference() -> str:
    from argen.cli.app import main

    os.environ["COLUMNS"] = "100"
    os.environ["TERMINAL_WIDTH"] = "100"
    parts = ["# CLI reference\n\nGenerated from each command's `--help` by `python docs/make_cli_reference.py > docs/cli.md`.\n"]
    for cmd in COMMANDS:
        buf = io.StringIO()
        with redirect_stdout(buf):
            main([*cmd, "--help"])
        text = buf.getvalue().rstrip().replace("Usage: main", "Usage: argen")
        parts.append(f"## `argen {' '.join(cmd)}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
