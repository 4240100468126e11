"""The documents a user reads stay true: the CLI reference is the current --help, the README stays
a user's page, and the commands the README shows exist."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_reference_is_the_current_help():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_cli_reference import reference
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "cli.md").read_text() == reference(), "run: python docs/make_cli_reference.py > docs/cli.md"


def test_the_readme_is_a_short_page_with_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 12 * 1024
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert blocks[0].strip().startswith("python3 -m venv .venv") and "argen image" in blocks[0]
    assert "pytest" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci, ".ci/run must call the README's test command"


def test_every_linked_document_exists():
    for doc in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md|LICENSE)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / doc).is_file(), doc
