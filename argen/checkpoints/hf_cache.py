"""Models already in the Hugging Face cache, read in place (argen never writes there).

The layout is huggingface_hub's (``huggingface_hub/constants.py`` and ``file_download.py``): the
cache is $HF_HUB_CACHE (or the older $HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub, else
$XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; a model repository
``owner/name`` lives in ``models--owner--name/``, whose ``refs/<revision>`` holds the commit a
revision points to and ``snapshots/<commit>/`` the files, each a symlink to ``blobs/<etag>``
(the etag of a file stored with LFS or Xet is the sha256 of its content).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from argen.checkpoints.files import sha256_file

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded repositories."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface" / "hub"


def is_repo_id(text: str) -> bool:
    """Whether ``text`` is spelled like a hub repository id (``owner/name``)."""
    return bool(REPO_ID.match(text)) and ".." not in text


def snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` (a branch, a tag or a commit), or None.
    A repository cached without its refs (copied by hand) is taken when it holds one snapshot."""
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / revision
    commit = revision if COMMIT.match(revision) else (ref.read_text().strip() if ref.is_file() else None)
    if commit is None:
        found = [p for p in snaps.iterdir() if p.is_dir()]
        return found[0] if len(found) == 1 else None
    folder = snaps / commit
    return folder if folder.is_dir() else None


def content_sha256(path: Path) -> str:
    """The sha256 of a cached file: its blob's name when it is a symlink to one named by a
    sha256 (the hub's etag of an LFS/Xet file, checked by huggingface_hub at download), else
    computed."""
    if path.is_symlink():
        name = Path(os.readlink(path)).name
        if re.fullmatch(r"[0-9a-f]{64}", name):
            return name
    return sha256_file(path)


def cached_files(repo_id: str, files: dict[str, str | None], revision: str = "main") -> Path | None:
    """The snapshot of ``repo_id`` holding every one of ``files`` (path in the repository ->
    pinned sha256 or None), each pinned one with that content; else None."""
    folder = snapshot(repo_id, revision)
    if folder is None:
        return None
    for file, sha in files.items():
        p = folder / file
        if not p.is_file() or (sha is not None and content_sha256(p) != sha):
            return None
    return folder
