"""ImageNet-1k class labels for the class-conditional image models (VAR, LlamaGen): ids 0-999 in
the standard ILSVRC-2012 order, each with its WordNet lemmas (``imagenet_classes.tsv``)."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

from argen.errors import UsageError

NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def classes() -> list[tuple[str, list[str]]]:
    """(synset id, lemmas) for each class index."""
    out = []
    for line in (Path(__file__).with_name("imagenet_classes.tsv")).read_text().splitlines():
        if line and not line.startswith("#"):
            _, synset, lemmas = line.split("\t")
            out.append((synset, lemmas.split(", ")))
    return out


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


@lru_cache(maxsize=1)
def _by_name() -> dict[str, list[int]]:
    names: dict[str, list[int]] = {}
    for i, (synset, lemmas) in enumerate(classes()):
        for n in [synset, *lemmas]:
            names.setdefault(_key(n), []).append(i)
    return names


def class_name(index: int) -> str:
    """The first lemma of class ``index``, e.g. 207 -> 'golden retriever'."""
    return classes()[index][1][0]


def class_index(label: str | int) -> int:
    """A class id from an id (``207``), a lemma in any case with spaces, underscores or hyphens
    (``golden_retriever``) or a synset id (``n02099601``). Ambiguous and unknown names are
    usage errors that name the candidates."""
    text = str(label).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < NUM_CLASSES:
            raise UsageError(f"class label {i} is out of range (ImageNet ids are 0 to {NUM_CLASSES - 1})")
        return i
    hits = _by_name().get(_key(text))
    if hits and len(set(hits)) == 1:
        return hits[0]
    if hits:
        options = ", ".join(f"{i} ({class_name(i)})" for i in sorted(set(hits)))
        raise UsageError(f"class label {text!r} names several ImageNet classes: {options}",
                         hint="pass the class id instead")
    close = difflib.get_close_matches(_key(text), list(_by_name()), n=3, cutoff=0.75)
    hint = "did you mean " + ", ".join(f"{c.replace(' ', '_')} ({_by_name()[c][0]})" for c in close) + "?" if close \
        else "use a class id 0-999 or an ImageNet class name such as golden_retriever"
    raise UsageError(f"unknown ImageNet class {text!r}", hint=hint)
