"""Reading a file the user named: one-line errors that say what is actually wrong with it (a
folder given where a file is expected is "a folder", not "not found"; bytes that are not UTF-8
are named by value and offset, not by the codec's traceback)."""

from __future__ import annotations

from pathlib import Path

from argen.errors import ArgenError


def check_file(path: str | Path, what: str = "file", hint: str = "check the path") -> Path:
    """``path`` as a Path if it is a regular file; otherwise a one-line ArgenError that says
    whether it is missing, a folder or something else (a FIFO, a device)."""
    p = Path(path)
    if p.is_dir():
        raise ArgenError(f"{what} {p} is a folder, not a file", hint=hint)
    if not p.exists():
        raise ArgenError(f"{what} {p} not found", hint=hint)
    if not p.is_file():  # reading a FIFO blocks, a device may never end
        raise ArgenError(f"{what} {p} is not a regular file", hint=hint)
    return p


def decode_utf8(data: bytes, where: str) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped); an ArgenError naming the
    first bad byte otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ArgenError(f"{where} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})",
                         hint="save the file as UTF-8") from None


def read_utf8(path: str | Path, what: str = "file", hint: str = "check the path") -> str:
    """The text of a UTF-8 file, with the one-line errors of :func:`check_file` and :func:`decode_utf8`
    (``what`` names the file's role in messages: "prompt file", "text corpus", ...)."""
    p = check_file(path, what, hint)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ArgenError(f"cannot read {what} {p}: {e.strerror or e}", hint=hint) from None
    return decode_utf8(data, f"{what} {p}")
