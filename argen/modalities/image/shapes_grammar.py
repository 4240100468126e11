"""The caption grammar of the bundled shapes image models (the "shapes" dataset's captions)::

    a [small|large] <color> <shape>[ in the <position>][ on a <bg> background]
    a <color> <shape> <relation> a <color> <shape>[ on a <bg> background]

A caption without a background means black; without a size, a medium object; without a position,
anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argen.errors import UsageError

SIZE = 64
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (240, 220, 40),
    "magenta": (220, 50, 220), "cyan": (40, 210, 220), "orange": (250, 140, 30), "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
SHAPES = ("circle", "square", "triangle")
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (16, 16), "top right": (48, 16), "bottom left": (16, 48), "bottom right": (48, 48), "center": (32, 32),
}
RELATIONS = ("left of", "right of", "above", "below")
SIZES: dict[str, tuple[int, int]] = {"small": (5, 7), "medium": (8, 10), "large": (12, 14)}  # radius range, px
HELD_OUT = {("orange", "square"), ("magenta", "triangle")}
VOCABULARY = sorted({"a", "in", "the", "on", "background", "of", "small", "large", *COLORS, *BACKGROUNDS, *SHAPES,
                     *(w for p in POSITIONS for w in p.split()), *(w for r in RELATIONS for w in r.split())})


@dataclass
class Obj:
    color: str
    shape: str
    size: str | None = None  # None: medium, unstated
    position: str | None = None  # None: unstated


@dataclass
class Scene:
    objects: list[Obj]
    relation: str | None = None  # two objects: objects[0] <relation> objects[1]
    background: str | None = None  # None: black, unstated
    centers: list[tuple[float, float]] = field(default_factory=list)  # filled when rendered

    @property
    def bg(self) -> str:
        return self.background or "black"

    def caption(self) -> str:
        if self.relation:
            a, b = self.objects
            text = f"a {a.color} {a.shape} {self.relation} a {b.color} {b.shape}"
        else:
            o = self.objects[0]
            text = "a " + (f"{o.size} " if o.size else "") + f"{o.color} {o.shape}"
            if o.position:
                text += f" in the {o.position}"
        return text + (f" on a {self.background} background" if self.background else "")


def parse_caption(text: str) -> Scene:
    """The scene a caption describes; a caption outside the grammar is a UsageError."""
    words = text.strip().lower().split()
    unknown = sorted({w for w in words if w not in VOCABULARY})
    if unknown:
        raise UsageError(f"unknown word(s) in the prompt: {', '.join(unknown)}",
                         hint=f"the shapes models know: {' '.join(VOCABULARY)}")
    s = " ".join(words)
    background = None
    for bg in BACKGROUNDS:
        suffix = f" on a {bg} background"
        if s.endswith(suffix):
            s, background = s[: -len(suffix)], bg
            break
    for rel in RELATIONS:
        if f" {rel} a " in s:
            left, right = s.split(f" {rel} a ", 1)
            return Scene([_parse_object(left, text, allow_extras=False), _parse_object("a " + right, text, allow_extras=False)],
                         relation=rel, background=background)
    return Scene([_parse_object(s, text, allow_extras=True)], background=background)


def _parse_object(s: str, original: str, allow_extras: bool) -> Obj:
    words = s.split()
    position = None
    if allow_extras and " in the " in s:
        s, position = s.split(" in the ", 1)
        words = s.split()
        if position not in POSITIONS:
            raise UsageError(f"unknown position {position!r} in {original!r}", hint=f"positions: {', '.join(POSITIONS)}")
    size = None
    if allow_extras and len(words) == 4 and words[1] in ("small", "large"):
        size = words.pop(1)
    if len(words) != 3 or words[0] != "a" or words[1] not in COLORS or words[2] not in SHAPES:
        raise UsageError(f"cannot read {original!r} as a shapes caption",
                         hint="e.g. 'a red circle in the top left' or 'a blue square left of a green triangle'")
    return Obj(color=words[1], shape=words[2], size=size, position=position)
