"""A real headless browser for the gallery tests: Debian's Chromium, driven by its own
``--dump-dom`` and ``--screenshot`` (no Playwright, no downloaded browser).

The page records each media element's outcome in ``data-state`` and the counts in
``#media-log``; Chromium's ``--enable-logging=stderr`` prints every console message as a
``CONSOLE`` line, which the tests require to be absent. Without Chromium the tests skip, unless
``ARGEN_REQUIRE_BROWSER=1`` (for a machine that has it: ``apt-get install -y chromium``) makes that a
failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--mute-audio"]


def chromium() -> str:
    """The browser's path; skips the test (or fails it, under ARGEN_REQUIRE_BROWSER=1) without one."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ARGEN_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (ARGEN_REQUIRE_BROWSER=1): apt-get install -y chromium")
    pytest.skip("no Chromium on this machine (apt-get install -y chromium)")


def run(page: Path | str, *extra: str, budget_ms: int | None = None, window: str = "1400,2400",
        timeout: float = 90) -> tuple[str, list[str]]:
    """Open ``page`` (a file, or a file:// address with a #fragment) and return (stdout, the console
    messages it logged)."""
    url = page if isinstance(page, str) else page.resolve().as_uri()
    args = [chromium(), *FLAGS, "--enable-logging=stderr", "--v=0", f"--window-size={window}", *extra]
    if budget_ms is not None:  # let lazy media load: the dump waits for this much (virtual) time
        args.append(f"--virtual-time-budget={budget_ms}")
    with tempfile.TemporaryDirectory(prefix="argen-chromium-") as profile:
        r = subprocess.run([*args, f"--user-data-dir={profile}", url], capture_output=True,
                           text=True, timeout=timeout)
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    return r.stdout, console


def dump_dom(page: Path | str, budget_ms: int | None = None, window: str = "1400,2400") -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran (and, with ``budget_ms``, after media had time to load)."""
    return run(page, "--dump-dom", budget_ms=budget_ms, window=window)


def screenshot(page: Path, out: Path, window: str = "1280,1400", budget_ms: int = 5000) -> Path:
    """A PNG of the page's first ``window`` pixels."""
    run(page, f"--screenshot={out.resolve()}", budget_ms=budget_ms, window=window)
    return out


def attr(dom: str, element_id: str, name: str) -> str | None:
    """Attribute ``name`` of the element with id ``element_id`` in a dumped DOM."""
    m = re.search(rf'<[^>]*\bid="{re.escape(element_id)}"[^>]*>', dom)
    if not m:
        return None
    a = re.search(rf'\b{re.escape(name)}="([^"]*)"', m.group(0))
    return a.group(1) if a else None


def settled_dom(page: Path | str, budgets=(8000, 20000, 60000)) -> tuple[str, list[str]]:
    """The DOM once every media element has either loaded or failed (``#media-log``'s counts add
    up), trying longer time budgets on a busy machine (a video's decoder runs in real time, outside
    the virtual clock); the console messages of every try."""
    logged: list[str] = []
    for budget in budgets:
        dom, console = dump_dom(page, budget_ms=budget)
        logged += console
        counts = [attr(dom, "media-log", f"data-{k}") for k in ("loaded", "error", "total")]
        if None not in counts and int(counts[0]) + int(counts[1]) == int(counts[2]):
            break
    return dom, logged
