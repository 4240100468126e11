"""Hub ids (``ORG/NAME``) as model names: the Hugging Face cache first, then argen's own pull.

``--model CH3COOK/mesh-xl-125m`` loads the snapshot ``huggingface-cli download`` / ``hf download``
(or transformers) left in the Hugging Face cache (so does its registry name, ``meshxl-125m``, until
`argen weights pull` has made a copy of its own); failing that, the copy `argen weights pull`
made of the registry entry whose ``hub.repo_id`` it is; failing that, one line naming what to
download. Nothing is downloaded here.

The cache layout is huggingface_hub's (https://huggingface.co/docs/hub/local-cache): the folder is
$HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
~/.cache/huggingface/hub; a model repository is ``models--ORG--NAME`` with ``refs/<revision>``
(a commit hash), ``snapshots/<commit>/<path>`` (links into ``blobs/``) and ``blobs/<etag>``, where
an LFS file's etag is the sha256 of its content. A registry file with a pinned sha256 is
therefore checked by the name of the blob its snapshot entry links to (hashed only when the
entry is not such a link, e.g. a copy on Windows).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from argen.checkpoints.files import sha256_file
from argen.checkpoints.registry import RegistryEntry, load_registry
from argen.errors import ArgenError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, from the same variables huggingface_hub reads."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):  # the second is the older name huggingface_hub still reads
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def is_hub_id(name: str) -> bool:
    """``ORG/NAME`` that is not an existing path."""
    return bool(HUB_ID.match(name)) and not Path(name).expanduser().exists()


def repo_folder(repo_id: str) -> Path:
    return hub_cache() / ("models--" + repo_id.replace("/", "--"))


def snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` (a branch or tag named in ``refs/``,
    or a commit hash); None when the cache holds none."""
    root = repo_folder(repo_id)
    ref = root / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    if not ref.is_file() and not COMMIT.match(revision) and (root / "snapshots").is_dir():
        found = [p for p in (root / "snapshots").iterdir() if p.is_dir()]  # copied by hand without refs/: one snapshot
        commit = found[0].name if len(found) == 1 else commit
    folder = root / "snapshots" / commit
    if COMMIT.match(commit) and folder.is_dir():
        return folder
    return None


def registered(repo_id: str) -> list[tuple[str, RegistryEntry]]:
    """Registry entries whose files come from hub repository ``repo_id`` (hub ids are case-insensitive)."""
    key = repo_id.lower()
    return [(name, e) for name, e in load_registry().models.items()
            if e.hub is not None and (e.hub.repo_id or "").lower() == key]


def registered_name(repo_id: str) -> str | None:
    """The registry name of the one entry that pulls ``repo_id`` (None: none, or several)."""
    entries = registered(repo_id)
    return entries[0][0] if len(entries) == 1 else None


def hub_id_entry(repo_id: str, modality: str | None = None) -> tuple[str | None, RegistryEntry | None]:
    """The registry entry that pulls ``repo_id`` as (name, entry), (None, None) when none does;
    an ArgenError when several do or its modality is not ``modality``."""
    entries = registered(repo_id)
    if len(entries) > 1:
        names = ", ".join(n for n, _ in entries)
        raise ArgenError(f"{repo_id} holds several registered models ({names})", hint="pass one of those names")
    name, entry = entries[0] if entries else (None, None)
    if entry is not None and modality is not None and entry.modality != modality:
        raise ArgenError(f"model {repo_id!r} is a {entry.modality} model, not {modality}",
                         hint="see `argen models` for each model's modality")
    return name, entry


def snapshot_files(entry: RegistryEntry) -> tuple[Path, dict[str, str], str | None] | None:
    """(folder, pinned sha256 by file, the weights' sha256) of the Hugging Face cache's snapshot
    of a registry entry's repository when it holds every file the entry lists (pinned ones
    checked); None otherwise."""
    snap = snapshot(entry.hub.repo_id, entry.hub.revision) if entry.hub.repo_id else None
    if snap is None or any(not (snap / f.file).is_file() for f in entry.hub.files):
        return None
    pins = {f.file: f.sha256 for f in entry.hub.files if f.sha256 and f.url is None}  # url files come from elsewhere
    for file, sha in pins.items():
        _check_pin(snap / file, sha, entry.hub.repo_id)
    return snap, pins, weights_sha(snap, pins)


def not_downloaded(name: str | None, entry: RegistryEntry | None, shown: str) -> ArgenError:
    """The error for a hub model found neither in the Hugging Face cache nor pulled."""
    if entry is None:
        return ArgenError(f"model {shown!r} is not downloaded (no copy in the Hugging Face cache, {hub_cache()})",
                          hint=f"download it with `hf download {shown}` (argen never downloads at generation "
                               "time), or pass a model folder")
    snap = snapshot(entry.hub.repo_id, entry.hub.revision) if entry.hub.repo_id else None
    missing = [f.file for f in entry.hub.files if snap is not None and not (snap / f.file).is_file()]
    where = (f"the Hugging Face cache's copy lacks {', '.join(missing)}" if missing
             else f"not in the Hugging Face cache ({hub_cache()}) nor pulled")
    return ArgenError(f"model {shown!r} is not downloaded ({where})", hint=f"run `argen weights pull {name}`")


def _check_pin(path: Path, sha: str, repo_id: str) -> None:
    """A snapshot file is the one the registry pins: its blob's name, else its content's sha256."""
    target = path.resolve()
    if target.name == sha:
        return
    # a blob named by another sha256 is another LFS file; anything else (a git blob id, a copy) is hashed
    if SHA256.match(target.name) is None and sha256_file(path) == sha:
        return
    raise ArgenError(f"{repo_id}: {path.name} in the Hugging Face cache does not match the registry's sha256",
                     hint=f"delete {repo_folder(repo_id)} and download it again")


def weights_sha(snap: Path, pins: dict[str, str]) -> str | None:
    """The weight file's sha256: the registry's pin, else the name of its LFS blob."""
    for file in sorted(pins):
        if file.endswith((".safetensors", ".bin", ".pth", ".pt")):
            return pins[file]
    for p in sorted(snap.glob("**/*")):  # a diffusers pipeline keeps its weights in sub-folders
        if p.suffix in (".safetensors", ".bin", ".pth", ".pt") and SHA256.match(p.resolve().name):
            return p.resolve().name
    return None


# Registry entries with ``cache: huggingface`` (Janus-Pro): the repository is used as it is from
# the Hugging Face cache, and `argen weights pull` downloads the files matching ``allow`` there,
# so nothing a user already fetched with ``hf download``, transformers or diffusers is fetched twice.

def find(repo_id: str, revision: str = "main", pull_name: str | None = None) -> Path:
    """The cached snapshot of ``repo_id`` (a model folder: it holds config.json), or a one-line
    error naming what to download."""
    folder = snapshot(repo_id, revision)
    if folder is None or not (folder / "config.json").is_file():
        how = f"run `argen weights pull {pull_name}`" if pull_name else f"download it: `hf download {repo_id}`"
        raise ArgenError(f"{repo_id} is not in the Hugging Face cache ({hub_cache()})",
                         hint=f"{how} (HF_HOME chooses the cache)")
    return folder


def check_blobs(folder: Path) -> list[str]:
    """Files of a snapshot whose content does not match their blob's sha256 name (LFS files);
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
    """Download ``repo_id`` (the files matching ``allow``) into the Hugging Face cache, reusing what
    is there, and check every LFS file's sha256; returns the snapshot folder."""
    import sys

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow or None, endpoint=endpoint,
                                        cache_dir=hub_cache()))
    except (OSError, HfHubHTTPError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ArgenError(f"cannot download {repo_id} ({reason})",
                         hint=f"offline? put a copy in the Hugging Face cache ({hub_cache()}), e.g. "
                              f"`hf download {repo_id}` on a connected machine with the same HF_HOME") from None
    bad = check_blobs(folder)
    if bad:
        raise ArgenError(f"{repo_id}: {', '.join(bad[:3])} did not match its sha256; the bad copies were deleted",
                         hint="run the pull again")
    if not quiet:
        print(f"{repo_id}: in the Hugging Face cache at {folder}, sha256 ok", file=sys.stderr, flush=True)
    return folder
