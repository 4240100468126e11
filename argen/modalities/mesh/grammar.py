"""The caption grammar of the bundled shapes3d mesh model::

    a [tall|short|wide|narrow ]<object>
"""

from __future__ import annotations

from dataclasses import dataclass

import trimesh

from argen.errors import UsageError

MAX_FACES = 400
SEGMENTS = 8  # cylinders, cones and round parts: modest segment counts keep sequences short
PRIMITIVES = ("cube", "box", "tetrahedron", "octahedron", "pyramid", "prism", "hexprism", "cylinder", "cone",
              "sphere")
COMPOSED = ("table", "chair", "stool", "lamp", "arch")
OBJECTS = PRIMITIVES + COMPOSED
MODIFIERS = ("tall", "short", "wide", "narrow")
VOCABULARY = sorted({"a", *OBJECTS, *MODIFIERS})
# the cube keeps its proportions: a "tall cube" would be a box
NO_MODIFIERS = {"cube", "tetrahedron", "octahedron", "sphere"}
SPLITS = {"train": 0, "val": 1, "ref": 2}  # "ref": the reference shapes of class adherence


@dataclass
class MeshSample:
    caption: str
    object: str
    modifier: str | None
    mesh: trimesh.Trimesh


def parse_caption(text: str) -> tuple[str | None, str]:
    """(modifier or None, object) of a caption; words outside the grammar are a UsageError
    that lists the known words."""
    words = text.strip().lower().split()
    unknown = sorted({w for w in words if w not in VOCABULARY})
    if unknown:
        raise UsageError(f"unknown word(s) in the prompt: {', '.join(unknown)}",
                         hint=f"objects: {' '.join(OBJECTS)}; modifiers: {' '.join(MODIFIERS)}")
    if words and words[0] == "a":
        words = words[1:]
    if len(words) == 2 and words[0] in MODIFIERS and words[1] in OBJECTS:
        return words[0], words[1]
    if len(words) == 1 and words[0] in OBJECTS:
        return None, words[0]
    raise UsageError(f"cannot read the prompt {text!r}",
                     hint="write 'a [tall|short|wide|narrow] OBJECT', e.g. 'a tall lamp'; "
                          f"objects: {' '.join(OBJECTS)}")


def caption_of(modifier: str | None, obj: str) -> str:
    return f"a {modifier} {obj}" if modifier else f"a {obj}"
