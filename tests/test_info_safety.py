"""`argen info` on hostile files: control sequences escaped, non-objects and deep nesting one-line
errors, and no hang on a FIFO, a device or a huge file."""

from __future__ import annotations

import json
import os
import time

import pytest


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and "internal error" not in err, err
    return lines[0]


def test_control_sequences_in_metadata_are_escaped(cli, tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    title = "\x1b]0;PWNED\x07\x9b2J\x7f x\nnext"
    (tmp_path / "t.txt.meta.json").write_text(json.dumps({"generator": "argen", "title": title, "p": {"k": "\x1b[2J"}}))
    code, out, _ = cli("info", tmp_path / "t.txt")
    assert code == 0 and out.isprintable() is False  # only the line breaks between keys
    assert all(line.isprintable() for line in out.splitlines()), out
    assert "\\x1b]0;PWNED\\x07\\x9b2J\\x7f x\\nnext" in out and "k=\\x1b[2J" in out
    code, out, _ = cli("info", tmp_path / "t.txt", "--json")
    assert code == 0 and out.strip().isprintable() and json.loads(out)["title"] == title


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "the metadata is a JSON list, not an object"),
    ('"x"', "the metadata is a JSON str, not an object"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "is not valid JSON (too deeply nested)"),
    (b"\xff\xfe{}", "is not valid JSON"),
])
def test_metadata_that_is_not_a_record_is_one_line(cli, tmp_path, content, message):
    (tmp_path / "t.txt").write_text("hello")
    side = tmp_path / "t.txt.meta.json"
    side.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = cli("info", tmp_path / "t.txt")
    assert code == 1 and message in one_error(err) and str(side) in err


def test_a_folder_a_fifo_and_a_device_are_refused_at_once(cli, tmp_path):
    (tmp_path / "d.png").mkdir()
    os.mkfifo(tmp_path / "f.obj")  # opening it for reading would block forever
    os.symlink("/dev/zero", tmp_path / "z.obj")  # reading it would never end
    for name, what in [("d.png", "is a folder"), ("f.obj", "is not a regular file"), ("z.obj", "is not a regular file")]:
        code, _, err = cli("info", tmp_path / name)
        assert code == 1 and one_error(err) == f"Error: {tmp_path / name} {what}"


def test_a_huge_obj_without_line_breaks_is_read_only_as_far_as_its_header(cli, tmp_path):
    big = tmp_path / "big.obj"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # 2 GiB of zeros (sparse): no newline anywhere
    t0 = time.process_time()
    code, _, err = cli("info", big)
    assert code == 1 and "carries no argen metadata" in one_error(err)
    assert time.process_time() - t0 < 2
