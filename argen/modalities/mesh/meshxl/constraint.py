"""MeshXL's serialisation as a sampling constraint: before each token, mask every id that could
not lead to a valid, canonical sequence (see :mod:`.tokenizer`), so every sampled mesh parses.

Given to :func:`argen.engine.sampling.next_token.generate` as ``allowed``. What it enforces (the rules
argen's own mesh constraint, ``argen.modalities.mesh.constraints``, applies to its tokenisation):

- structure: only coordinates, in faces of 9; EOS only between faces and after at least one;
  never BOS or PAD; at most ``max_faces``; a face is begun only if it and EOS fit the budget.
- order: a face starts at its smallest vertex and its vertex triple is larger than the previous
  face's, so no face repeats; a face's vertex set never repeats an earlier one's either (the
  other winding of a face already written).
- no degenerate triangle: three distinct vertices, not on one line of the grid.

``ordered=False`` keeps the validity rules (structure, no degenerate face, no repeated vertex
set) and drops the order ones (smallest vertex first, increasing faces): for a checkpoint whose
training data turns out to be ordered otherwise (MeshXL's preprocessing is unreleased).

Coordinates come x, y, z but vertices compare by ``key = (z * 128 + y) * 128 + x``; a vertex
known up to some axes leaves open the keys ``{n : n = r (mod m)}`` (m = 128, 128^2, 128^3 after
one, two, three coordinates). Every rule is checked over such residue classes, so a coordinate
is allowed exactly when some completion of the face is valid.

Why the cheap checks suffice: a first vertex ``a`` below the grid's last row (key <= TOP - 128)
always has a valid face after it - any two points of the last row make a triangle with it, and
there are 8128 such vertex sets, more than ``max_faces``. For a second vertex ``b > a`` some
third vertex exists unless faces already written block it: the line through ``a`` and ``b``
holds at most 127 keys above ``a``, and at least 128 keys are above it.
"""

from __future__ import annotations

import numpy as np

from argen.engine.sampling.grammar import RowGrammars
from argen.modalities.mesh.meshxl.tokenizer import EOS, LEVELS, PER_FACE, PLACE, VOCAB

TOP = LEVELS ** 3 - 1  # the largest vertex key
LAST_ROW = TOP - LEVELS  # a first vertex must not be in the last row (z = y = 127)
CANDIDATES = np.arange(LEVELS, dtype=np.int64)
MAX_FACES = 8000  # below the 8128 faces the argument above needs


def first_at_least(lo, r, m):
    """The smallest n >= lo with n = r (mod m) (vectorised over numpy arrays)."""
    return lo + np.mod(r - lo, m)


def count_in(lo: int, hi: int, r, m):
    """How many n in [lo, hi] have n = r (mod m)."""
    n0 = first_at_least(lo, r, m)
    return np.where(n0 > hi, 0, (hi - n0) // m + 1)


def line_keys(p: int, q: int) -> np.ndarray:
    """Keys of every grid point on the line through vertices with keys ``p`` and ``q``."""
    a = np.array([p % LEVELS, p // LEVELS % LEVELS, p // (LEVELS * LEVELS)], dtype=np.int64)
    d = np.array([q % LEVELS, q // LEVELS % LEVELS, q // (LEVELS * LEVELS)], dtype=np.int64) - a
    g = int(np.gcd.reduce(np.abs(d)))
    if g == 0:
        return np.array([p], dtype=np.int64)
    step = d // g
    lo_t, hi_t = -LEVELS, LEVELS
    for s, x in zip(step.tolist(), a.tolist()):
        if s > 0:
            lo_t, hi_t = max(lo_t, -(x // s)), min(hi_t, (LEVELS - 1 - x) // s)
        elif s < 0:
            lo_t, hi_t = max(lo_t, -((LEVELS - 1 - x) // -s)), min(hi_t, x // -s)
    pts = a[None] + np.arange(lo_t, hi_t + 1)[:, None] * step[None]  # (n, 3) as (x, y, z)
    return pts @ PLACE


class RowState:
    """The grammar state of one sequence (the tokens after BOS), advanced by :meth:`feed`."""

    def __init__(self, max_faces: int, budget: int, vocab: int = VOCAB, ordered: bool = True) -> None:
        if not 1 <= max_faces <= MAX_FACES:
            raise ValueError(f"max_faces must be in 1..{MAX_FACES}, got {max_faces}")
        if budget < PER_FACE + 1:
            raise ValueError("a mesh needs a budget of at least 10 tokens (one face and EOS)")
        self.max_faces, self.budget, self.vocab, self.ordered = max_faces, budget, vocab, ordered
        self.used = 0
        self.coords: list[int] = []  # coordinates of the face being written
        self.verts: list[int] = []  # keys of its finished vertices
        self.prev: tuple[int, int, int] | None = None  # the previous face's keys
        self.faces = 0
        self.done = False
        self.thirds: dict[tuple[int, int], set[int]] = {}  # edge -> third vertices of faces written
        self.nbrs: dict[int, set[int]] = {}  # vertex -> vertices it shares a written face with
        self._bad: np.ndarray | None = None  # keys that cannot close the current face

    # ------------------------------------------------------------------ advancing
    def feed(self, t: int) -> None:
        if self.done:
            return
        self.used += 1
        if t == EOS:
            self.done = True
            return
        self.coords.append(int(t))
        if len(self.coords) % 3:
            return
        self.verts.append(int(np.dot(self.coords[-3:], PLACE)))
        if len(self.verts) == 2:
            self._bad = self._bad_thirds(*self.verts)
        elif len(self.verts) == 3:
            a, b, c = self.verts
            for x, y, z in ((a, b, c), (a, c, b), (b, c, a)):
                self.thirds.setdefault((min(x, y), max(x, y)), set()).add(z)
                self.nbrs.setdefault(x, set()).add(y)
                self.nbrs.setdefault(y, set()).add(x)
            self.prev, self.faces = (a, b, c), self.faces + 1
            self.coords, self.verts, self._bad = [], [], None

    # ------------------------------------------------------------------ queries
    def allowed(self) -> np.ndarray:
        """Bool (vocab,): the ids that keep the sequence completable."""
        ok = np.zeros(self.vocab, dtype=bool)
        if self.done:
            ok[:] = True
            return ok
        if not self.coords:  # between faces
            left = self.budget - self.used  # tokens still to come, this one included
            ok[EOS] = self.faces > 0
            if self.faces < self.max_faces and left >= PER_FACE + 1 and self._face_after_prev():
                ok[:LEVELS] = self._first_vertex()
            return ok
        k = len(self.verts)
        ok[:LEVELS] = (self._first_vertex, self._second_vertex, self._third_vertex)[k]()
        return ok

    def _residues(self) -> tuple[np.ndarray, int]:
        """For each candidate coordinate: the residue r and modulus m of the keys it leaves open
        for the vertex being written."""
        axis = len(self.coords) % 3
        known = self.coords[len(self.coords) - axis:]
        base = int(np.dot(known, PLACE[:axis])) if axis else 0
        return base + CANDIDATES * PLACE[axis], int(PLACE[axis] * LEVELS)

    def _tight(self, k: int) -> bool:
        """Does the face so far equal the previous face's first k vertices?"""
        return self.ordered and self.prev is not None and tuple(self.verts[:k]) == self.prev[:k]

    def _first_vertex(self) -> np.ndarray:
        if not self.ordered:  # any vertex: a grid row without it gives 8128 faces with it
            return np.ones(LEVELS, dtype=bool)
        r, m = self._residues()
        p = self.prev
        lo = p[0] if p is not None else 0
        a0 = first_at_least(lo, r, m)
        ok = a0 <= LAST_ROW
        if p is not None:  # a0 == p[0] is fine only if (b, c) can still come after (p1, p2)
            at_prev = ok & (a0 == p[0])
            if at_prev.any() and not self._rest_after(*p):
                ok &= ~at_prev | (a0 + m <= LAST_ROW)
        return ok

    def _second_vertex(self) -> np.ndarray:
        a = self.verts[0]
        r, m = self._residues()
        tight = self._tight(1)
        lo = self.prev[1] if tight else (a + 1 if self.ordered else 0)
        b0 = first_at_least(lo, r, m)
        ok = b0 <= TOP
        special = set(self.nbrs.get(a, ())) | {a}
        if tight:
            special.add(self.prev[1])
        for i in np.nonzero(ok)[0]:
            if int(b0[i]) in special:
                ok[i] = self._any_second(a, int(b0[i]), m, tight)
        return ok

    def _third_vertex(self) -> np.ndarray:
        a, b = self.verts
        r, m = self._residues()
        lo = self.prev[2] + 1 if self._tight(2) else (a + 1 if self.ordered else 0)
        bad = self._bad[self._bad >= lo]
        inside = (np.mod(bad[None] - r[:, None], m) == 0).sum(1)
        return count_in(lo, TOP, r, m) > inside

    # ------------------------------------------------------------------ helpers
    def _bad_thirds(self, a: int, b: int) -> np.ndarray:
        """Keys that cannot close a face on (a, b): its line (a and b included) and the third
        vertices of faces already written on that edge (their vertex set would repeat)."""
        extra = self.thirds.get((min(a, b), max(a, b)), set())
        return np.unique(np.concatenate([line_keys(a, b), np.fromiter(extra, np.int64, len(extra))]))

    def _third_exists(self, a: int, b: int, lo: int) -> bool:
        bad = self._bad_thirds(a, b)
        return (TOP - lo + 1) - int(((bad >= lo) & (bad <= TOP)).sum()) > 0

    def _b_ok(self, a: int, b: int, tight: bool) -> bool:
        if b == a:
            return False
        if tight and b == self.prev[1]:
            return self._third_exists(a, b, self.prev[2] + 1)
        if (min(a, b), max(a, b)) not in self.thirds:
            return True  # no face on this edge yet: the line alone cannot block every third
        return self._third_exists(a, b, a + 1 if self.ordered else 0)

    def _any_second(self, a: int, b: int, m: int, tight: bool) -> bool:
        """Is some b' in {b, b + m, ...} <= TOP a valid second vertex? (Each failure needs a
        face already written on (a, b'), so the walk is short.)"""
        while b <= TOP:
            if self._b_ok(a, b, tight):
                return True
            b += m
        return False

    def _rest_after(self, p0: int, p1: int, p2: int) -> bool:
        """With first vertex p0, can some (b, c) still come after (p1, p2)?"""
        return self._third_exists(p0, p1, p2 + 1) or (p1 < TOP and self._any_second(p0, p1 + 1, 1, False))

    def _face_after_prev(self) -> bool:
        p = self.prev
        return not self.ordered or p is None or p[0] + 1 <= LAST_ROW or self._rest_after(*p)


class MeshXLConstraint(RowGrammars):
    """``allowed(step, outputs) -> (B, vocab) bool`` for :func:`generate`: each row's state is
    advanced with the tokens it gained since the previous call."""

    def __init__(self, batch: int, max_faces: int, budget: int | None = None, vocab: int = VOCAB,
                 ordered: bool = True) -> None:
        budget = budget if budget is not None else max_tokens(max_faces)
        super().__init__([RowState(max_faces, budget, vocab, ordered) for _ in range(batch)])


def max_tokens(max_faces: int) -> int:
    """Tokens after BOS that ``max_faces`` faces and EOS take."""
    return PER_FACE * max_faces + 1


def follows_grammar(tokens: list[int], max_faces: int = MAX_FACES, budget: int | None = None,
                    ordered: bool = True) -> bool:
    """Does the sequence after BOS (ending with EOS) follow what the constraint enforces?"""
    row = RowState(max_faces, budget if budget is not None else max_tokens(max_faces), ordered=ordered)
    for t in tokens:
        if row.done or not row.allowed()[t]:
            return False
        row.feed(t)
    return row.done
