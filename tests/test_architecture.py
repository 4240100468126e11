"""The package's shape (DESIGN: layers flow one way): the product never imports the lab, no two
modules import each other (directly or round a longer loop), and every file stays readable."""

from __future__ import annotations

import ast
from pathlib import Path

ARGEN = Path(__file__).resolve().parents[1] / "argen"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for p in ARGEN.rglob("*.py"):
        parts = p.relative_to(ARGEN.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports_of(path: Path, known: set[str]) -> set[str]:
    """argen modules ``path`` imports anywhere in it (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n in known and n.startswith("argen"):
                found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def test_the_product_never_imports_the_lab():
    bad = {m: sorted(d for d in deps if d.startswith("argen.lab")) for m, deps in graph().items()
           if not m.startswith("argen.lab")}
    assert not {m: d for m, d in bad.items() if d}


def test_no_import_cycle():
    g = graph()
    # package __init__ files are only the way to their modules: an import of argen.x.y passes argen.x
    g = {m: {d for d in deps if not (ARGEN.parent / d.replace(".", "/") / "__init__.py").is_file() or d == "argen"}
         for m, deps in g.items()}
    g = {m: {d for d in deps if d != "argen"} for m, deps in g.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_every_file_stays_under_400_lines():
    long = {str(p.relative_to(ARGEN.parent)): n for p in ARGEN.rglob("*.py")
            if (n := len(p.read_text().splitlines())) >= MAX_LINES}
    assert not long, long
