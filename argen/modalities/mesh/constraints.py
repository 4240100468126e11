"""The mesh grammar as a sampling constraint: before each token, mask every id that could not
lead to a valid sequence, so every sampled mesh parses (see argen.modalities.mesh.tokenizer).

Given to :func:`argen.engine.sampling.next_token.generate` as ``allowed``. What it enforces:

- structure: coordinates come in vertices of three (z, y, x); SEP and EOS only where a face or
  a strip may end; SEP is followed by a new face; at least one face; at most ``max_faces``;
  EOS comes within ``budget`` tokens (a face is begun only if it can end in time).
- sorting: inside a face (and a strip's first face) the vertices strictly increase in (z, y, x)
  order, so no face repeats a vertex; plain faces (and adjacent strips' first faces) strictly
  increase lexicographically, so no face repeats. A coordinate is allowed only if some
  completion of the face can still satisfy this (e.g. the first vertex may not be the largest
  possible vertex, since two larger ones must follow).
- adjacent continuation vertices differ from the two vertices they join, are not in line
  with them and never re-make a face already written.
- no zero-area triangle: a coordinate is allowed only if the vertex it starts can still be
  off the line through the face's other two (the first vertex is never in the last row of the
  grid; second vertices near the top are checked one by one).

Because coordinates are written (z, y, x), comparing vertices is comparing the integers
``(z * 128 + y) * 128 + x``; a partial vertex spans an interval of them.
"""

from __future__ import annotations

import numpy as np

from argen.engine.sampling.grammar import RowGrammars
from argen.modalities.mesh.tokenizer import EOS, LEVELS, SEP

TOP = LEVELS ** 3 - 1  # the largest vertex value
PLACE = (LEVELS * LEVELS, LEVELS, 1)  # weight of the z, y, x token in a vertex value
CANDIDATES = np.arange(LEVELS, dtype=np.int64)
NEAR = 3 * LEVELS  # second vertices this close to the top are checked one by one


def unpack(v: int) -> np.ndarray:
    """Vertex value -> (z, y, x)."""
    return np.array([v // PLACE[0], v // PLACE[1] % LEVELS, v % LEVELS], dtype=np.int64)


class RowState:
    """The grammar state of one sequence, advanced one token at a time by :meth:`feed`."""

    def __init__(self, adjacent: bool, max_faces: int, vocab: int, budget: int | None = None) -> None:
        self.adjacent, self.max_faces, self.vocab = adjacent, max_faces, vocab
        self.budget = budget if budget is not None else max_tokens(max_faces)  # tokens it may use
        if self.budget < 10:
            raise ValueError("a mesh needs a budget of at least 10 tokens (one face and EOS)")
        self.used = 0
        self.cur: list[int] = []  # coordinates of the vertex being written
        self.verts: list[int] = []  # vertex values of the current face (plain) or strip (adjacent)
        self.prev: tuple[int, ...] | None = None  # the previous face (plain) / strip's first face (adjacent)
        self.start: tuple[int, ...] | None = None  # the current strip's first face
        self.faces = 0
        self.done = False
        self.thirds: dict[tuple[int, int], set[int]] = {}  # edge -> third vertices of written faces

    def feed(self, t: int) -> None:
        if self.done:
            return
        self.used += 1
        if t == EOS:
            self.done = True
        elif t == SEP:
            if self.adjacent:
                self.prev = self.start
            self.verts, self.cur = [], []
        elif 0 <= t < LEVELS:
            self.cur.append(t)
            if len(self.cur) == 3:
                self.verts.append(sum(c * p for c, p in zip(self.cur, PLACE)))
                self.cur = []
                self._vertex_done()

    def _vertex_done(self) -> None:
        n = len(self.verts)
        if n < 3 or (n > 3 and not self.adjacent):
            return
        face = tuple(sorted(self.verts[-3:]))
        self.faces += 1
        a, b, c = face
        for e, third in (((a, b), c), ((a, c), b), ((b, c), a)):
            self.thirds.setdefault(e, set()).add(third)
        if n == 3:
            if self.adjacent:
                self.start = face
            else:
                self.prev = face

    def allowed(self) -> np.ndarray:
        """Bool (vocab,): the ids that keep the sequence completable."""
        ok = np.zeros(self.vocab, dtype=bool)
        if self.done:
            ok[:] = True
            return ok
        n = len(self.verts)
        at_boundary = not self.cur and n >= 3 and (self.adjacent or n == 3)
        left = self.budget - self.used  # tokens still to come, this one included
        room = self.faces < self.max_faces
        if at_boundary:
            ok[EOS] = True
            last = self.start if self.adjacent else self.prev  # the next face must come after it
            ok[SEP] = room and left >= 11 and self._face_after(last)  # SEP, a whole face, EOS
            if self.adjacent and room and left >= 4:  # a vertex, EOS
                ok[:LEVELS] = self._next_vertex()
            return ok
        if n < 3:
            ok[:LEVELS] = self._first_face()
        else:
            ok[:LEVELS] = self._next_vertex()
        return ok

    def _span(self) -> tuple[np.ndarray, np.ndarray]:
        """For each candidate coordinate: the interval [lo, hi] of vertex values it leaves open."""
        j = len(self.cur)
        base = sum(c * p for c, p in zip(self.cur, PLACE))
        lo = base + CANDIDATES * PLACE[j]
        return lo, lo + PLACE[j] - 1

    def _first_face(self) -> np.ndarray:
        """Coordinates of vertex k of a face whose vertices strictly increase, which comes
        strictly after ``prev`` (lexicographically) and which can still end in a triangle of
        non-zero area that was not written before."""
        k, v, prev = len(self.verts), self.verts, self.prev
        a, b = self._span()
        tight = prev is not None and tuple(v[:k]) == prev[:k]
        if k == 0:
            lo = prev[0] + (0 if self._rest_after(prev[0], prev[1], prev[2]) else 1) if tight else 0
            # never in the last row: every larger vertex would lie on one line with it
            return np.maximum(a, lo) <= np.minimum(b, TOP - LEVELS)
        if k == 1:
            lo = v[0] + 1
            if tight:
                lo = max(lo, prev[1] + (0 if self._second_ok(v[0], prev[1], prev[2] + 1) else 1))
            ok = np.maximum(a, lo) <= np.minimum(b, TOP - 1)
            for c in np.nonzero(ok)[0]:
                ok[c] = self._any_second(v[0], max(int(a[c]), lo), min(int(b[c]), TOP - 1),
                                         prev[1] if tight else None, prev[2] if tight else None)
            return ok
        lo = v[1] + 1
        if tight:
            lo = max(lo, prev[2] + 1)
        ok = self._count_ok(a, b, lo, TOP, self._bad_points(v[0], v[1]))
        return ok if ok.any() else np.maximum(a, lo) <= np.minimum(b, TOP)  # (unreachable) stay parseable

    def _next_vertex(self) -> np.ndarray:
        """Coordinates of an adjacent strip's next vertex: not one of the two it joins, not in
        line with them, not closing a face already written."""
        lo, hi = self._span()
        ok = self._count_ok(lo, hi, 0, TOP, self._bad_points(self.verts[-2], self.verts[-1]))
        return ok if ok.any() else hi >= lo

    def _bad_points(self, p: int, q: int) -> np.ndarray:
        """Vertex values that cannot close a face on edge (p, q): on its line (zero area, p and
        q included) or the third vertex of a face already written on it."""
        extra = self.thirds.get((min(p, q), max(p, q)), ())
        return np.concatenate([line_points(p, q), np.fromiter(extra, dtype=np.int64, count=len(extra))])

    def _third_count(self, p: int, q: int, lo: int) -> int:
        """How many vertex values in [lo, TOP] close a valid face on (p, q)."""
        if lo > TOP:
            return 0
        bad = np.unique(self._bad_points(p, q))
        return (TOP - lo + 1) - int(((bad >= lo) & (bad <= TOP)).sum())

    def _second_ok(self, v1: int, v2: int, lo3: int) -> bool:
        return self._third_count(v1, v2, max(lo3, v2 + 1)) > 0

    def _any_second(self, v1: int, lo: int, hi: int, p1: int | None, p2: int | None) -> bool:
        """Is there a second vertex in [lo, hi] that leaves a valid third one? (``p1``, ``p2``:
        the previous face's second and third vertex when the face so far equals it.) Far from
        the top at least NEAR larger values remain, more than one line and a few faces can
        take, so only the last values need checking one by one."""
        if lo > hi:
            return False
        safe_hi = min(hi, TOP - NEAR)
        if safe_hi >= lo and (safe_hi - lo + 1) > (1 if p1 is not None and lo <= p1 <= safe_hi else 0):
            return True
        for v2 in range(max(lo, TOP - NEAR) if safe_hi < lo else lo, hi + 1):
            if self._second_ok(v1, v2, p2 + 1 if v2 == p1 else v2 + 1):
                return True
        return False

    def _face_after(self, face: tuple[int, ...]) -> bool:
        """Can any valid face still come after ``face`` in the sort?"""
        return face[0] + 1 <= TOP - LEVELS or self._rest_after(*face)

    def _rest_after(self, v1: int, p1: int, p2: int) -> bool:
        """With first vertex ``v1`` equal to the previous face's, can (v2, v3) still come after
        (p1, p2)?"""
        return self._second_ok(v1, p1, p2 + 1) or self._any_second(v1, p1 + 1, TOP - 1, None, None)

    @staticmethod
    def _count_ok(a: np.ndarray, b: np.ndarray, lo: int, hi: int, bad: np.ndarray) -> np.ndarray:
        """Per candidate: does [a, b] within [lo, hi] hold a value outside ``bad``?"""
        left, right = np.maximum(a, lo), np.minimum(b, hi)
        bad = np.unique(bad)
        inside = ((bad[None] >= left[:, None]) & (bad[None] <= right[:, None])).sum(1)
        return (right >= left) & (right - left + 1 > inside)


def grid_line(a: np.ndarray, d: np.ndarray, levels: int) -> np.ndarray:
    """Every point (n, 3) of a ``levels``-wide integer grid on the line through point ``a`` with
    direction ``d`` (both int64 (3,), coordinates in any order): the steps are ``d`` over the gcd of
    its entries, bounded so that every coordinate stays in [0, levels)."""
    g = int(np.gcd.reduce(np.abs(d)))
    if g == 0:
        return a[None]
    step = d // g
    lo_t, hi_t = -levels, levels
    for s, x in zip(step.tolist(), a.tolist()):
        if s > 0:
            lo_t, hi_t = max(lo_t, -(x // s)), min(hi_t, (levels - 1 - x) // s)
        elif s < 0:
            lo_t, hi_t = max(lo_t, -((levels - 1 - x) // -s)), min(hi_t, x // -s)
    return a[None] + np.arange(lo_t, hi_t + 1)[:, None] * step[None]


def line_points(p: int, q: int) -> np.ndarray:
    """Vertex values of every grid point on the line through vertices ``p`` and ``q``."""
    a = unpack(p)
    pts = grid_line(a, unpack(q) - a, LEVELS)  # (n, 3) as (z, y, x)
    return (pts[:, 0] * LEVELS + pts[:, 1]) * LEVELS + pts[:, 2]


class MeshConstraint(RowGrammars):
    """``allowed(step, outputs) -> (B, vocab) bool`` for :func:`generate`: each row's state is
    advanced with the tokens it gained since the previous call."""

    def __init__(self, batch: int, adjacent: bool, max_faces: int, vocab: int, budget: int | None = None) -> None:
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        super().__init__([RowState(adjacent, max_faces, vocab, budget) for _ in range(batch)])


def max_tokens(max_faces: int) -> int:
    """Tokens that always suffice: every face alone (9 coordinates and a SEP), then EOS."""
    return 10 * max_faces + 1


def most_faces(adjacent: bool, budget: int) -> int:
    """The most faces ``budget`` tokens (EOS included) can hold under the grammar: a first face of
    9 coordinates, then 3 for each face continuing an adjacent strip, or SEP and 9 for a plain face."""
    return 1 + (budget - 10) // (3 if adjacent else 10)


def is_valid(tokens: list[int], adjacent: bool, max_faces: int = 10_000, vocab: int = EOS + 1,
             budget: int | None = None) -> bool:
    """Does the sequence follow the grammar the constraint enforces (ending with EOS)?"""
    row = RowState(adjacent, max_faces, vocab, budget)
    for t in tokens:
        if row.done or not row.allowed()[t]:
            return False
        row.feed(t)
    return row.done
