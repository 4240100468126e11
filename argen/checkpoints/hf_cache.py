"""Models kept in the Hugging Face cache (``$HF_HOME/hub``, the layout huggingface_hub writes):
``--model owner/name`` loads a copy already there, and `argen weights pull NAME` for a registry
entry with ``cache: huggingface`` downloads into that same cache, so nothing a user already
downloaded (with ``hf download``, transformers or diffusers) is fetched twice.

The cache stores each file once as ``blobs/<id>`` and links it from ``snapshots/<commit>/``; a
large (LFS) file's id is the sha256 of its content, which is what a pull checks every such file
against (a mismatching blob is deleted and the pull fails in one line). huggingface_hub is
imported only here, when a hub id is looked up or pulled.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_hub_id(name: str) -> bool:
    """``owner/name`` (not an existing path: callers check that first)."""
    return bool(HUB_ID.match(name)) and not name.startswith((".", "/", "~"))


def cache_root() -> Path:
    """Where huggingface_hub keeps repositories ($HF_HUB_CACHE, else $HF_HOME/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (None when not in the cache);
    nothing is downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if (folder / "config.json").is_file() else None


def find(repo_id: str, revision: str = "main", pull_name: str | None = None) -> Path:
    """The cached snapshot of ``repo_id``, or a one-line error naming what to download."""
    folder = snapshot(repo_id, revision)
    if folder is None:
        how = f"run `argen weights pull {pull_name}`" if pull_name else f"download it: `hf download {repo_id}`"
        raise ArgenError(f"{repo_id} is not in the Hugging Face cache ({cache_root()})",
                         hint=f"{how} (HF_HOME chooses the cache)")
    return folder


def check_blobs(folder: Path) -> list[str]:
    """Files of a snapshot whose content does not match their blob's sha256 id (LFS files);
    their blobs are deleted so that the next pull fetches them again."""
    bad = []
    for link in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = link.resolve()
        if SHA256.match(blob.name) and sha256_file(blob) != blob.name:
            bad.append(str(link.relative_to(folder)))
            blob.unlink()
    return bad


def pull(repo_id: str, revision: str = "main", allow: list[str] | None = None, endpoint: str | None = None,
         quiet: bool = False) -> Path:
    """Download ``repo_id`` (files matching ``allow``) into the Hugging Face cache, reusing what is
    there, and check every LFS file's sha256; returns the snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow or None, endpoint=endpoint))
    except (OSError, HfHubHTTPError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ArgenError(f"cannot download {repo_id} ({reason})",
                         hint=f"offline? put a copy in the Hugging Face cache ({cache_root()}), e.g. "
                              f"`hf download {repo_id}` on a connected machine with the same HF_HOME") from None
    bad = check_blobs(folder)
    if bad:
        raise ArgenError(f"{repo_id}: {', '.join(bad[:3])} did not match its sha256; the bad copies were deleted",
                         hint="run the pull again")
    if not quiet:
        print(f"{repo_id}: in the Hugging Face cache at {folder}, sha256 ok", file=sys.stderr, flush=True)
    return folder
