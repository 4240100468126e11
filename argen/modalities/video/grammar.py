"""The caption grammar of the bundled bouncing-objects video model::

    a <color> <shape>
    a <color> <shape> and a <color> <shape>
    a <color> <shape>, a <color> <shape> and a <color> <shape>

``<color>`` comes from the image palette, ``<shape>`` is circle or square; the objects of one
clip have different colours.
"""

from __future__ import annotations

from argen.errors import UsageError
from argen.modalities.image.shapes_grammar import COLORS

SIZE = 32
FPS = 8
SHAPES = ("circle", "square")
GRAMMAR = ("a <color> <shape>[, a <color> <shape>] and a <color> <shape> (one to three objects, "
           f"different colours); colors: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)}")


def parse_caption(text: str) -> list[tuple[str, str]]:
    """(colour, shape) of each object a caption lists; outside the grammar is a UsageError."""
    parts = text.strip().lower().replace(" and ", ", ").split(", ")
    objects = []
    for part in parts:
        words = part.split()
        if len(words) != 3 or words[0] != "a" or words[1] not in COLORS or words[2] not in SHAPES:
            raise UsageError(f"cannot read {part!r} in the prompt", hint=f"prompt grammar: {GRAMMAR}")
        objects.append((words[1], words[2]))
    if not 1 <= len(objects) <= 3 or len({c for c, _ in objects}) != len(objects):
        raise UsageError("a prompt lists one to three objects of different colours", hint=f"prompt grammar: {GRAMMAR}")
    return objects
