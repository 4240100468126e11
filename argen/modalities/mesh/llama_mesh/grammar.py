"""A token-level grammar for LLaMA-Mesh's OBJ text: only ``v x y z`` lines (integer coordinates
in 0..coord_max) followed by ``f i j k`` lines (1-based indices of vertices already written,
three distinct ones), each line ended by a newline, so every finished output parses.

LLaMA-Mesh (Wang et al. 2024, arXiv 2411.09595, Sec. 3) writes meshes as OBJ text with vertex
coordinates quantised to 64 integer values per axis and at most 500 faces; vertices come first,
then faces. The grammar runs on characters; a token is allowed when every character of its text
keeps the line a valid prefix (a token may hold several characters, even span fields or lines,
e.g. ``" 12"`` or ``"3\\nf"``). Precomputed once per tokenizer: the tokens made only of
``0-9``, space, newline, ``v`` and ``f`` (the rest are never allowed); the pure-digit ones are
checked together with numpy, the few others character by character.

Ending: an end token (the chat's ``<|eot_id|>``...) is allowed only between lines, after at
least one face. ``budget`` (tokens the row may still take) is respected: a token is allowed only
if a finished mesh still fits after it, counting one token per character (the tokenizer must
have a single-character token for each of the 14 characters, as byte-level BPEs do).
"""

from __future__ import annotations

import numpy as np
import torch

DIGITS = "0123456789"
ALPHABET = frozenset(DIGITS + " \nvf")
MIN_V, MIN_F = "v 0 0 0\n", "f 1 2 3\n"

# A state: (kind, field, digits, values, nv, nf). kind "" between lines, "v"/"f" inside one;
# field -1 right after the keyword, 0..2 in that number; digits: the number so far; values:
# the numbers finished on this line; nv, nf: finished vertex and face lines.
START = ("", -1, "", (), 0, 0)


class ObjGrammar:
    """The grammar over one tokenizer's vocabulary. ``texts[i]`` is token i's text (None for
    special tokens); ``end_ids`` the tokens that may end the output."""

    def __init__(self, texts: list[str | None], end_ids: list[int], coord_max: int = 63, max_faces: int = 500) -> None:
        self.vocab, self.end_ids = len(texts), [int(i) for i in end_ids]
        self.coord_max, self.max_faces = coord_max, max_faces
        self.texts = texts
        cand = [i for i, t in enumerate(texts) if t and set(t) <= ALPHABET]
        single = {t: i for i, t in enumerate(texts) if t and len(t) == 1}
        missing = sorted(ALPHABET - set(single))
        if missing:
            raise ValueError(f"the tokenizer has no single-character token for {missing}")
        pure = [i for i in cand if texts[i].isdigit() and len(texts[i]) <= 9]
        self.digit_ids = np.array(pure, dtype=np.int64)
        self.digit_len = np.array([len(texts[i]) for i in pure], dtype=np.int64)
        self.digit_val = np.array([int(texts[i]) for i in pure], dtype=np.int64)
        self.digit_lead0 = np.array([texts[i][0] == "0" and len(texts[i]) > 1 for i in pure])
        pure_set = set(pure)
        others = [i for i in cand if i not in pure_set]
        self.other_ids = others
        self.by_first = {c: [i for i in others if texts[i][0] == c] for c in ALPHABET}

    @classmethod
    def from_tokenizer(cls, tok, end_ids: list[int], **kw) -> "ObjGrammar":
        """From a ``tokenizers.Tokenizer`` (its special tokens excluded)."""
        special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        n = tok.get_vocab_size()
        texts = tok.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
        return cls([None if i in special else t for i, t in enumerate(texts)], end_ids, **kw)

    # ------------------------------------------------------------------ characters
    def _range(self, state) -> tuple[int, int, tuple[int, ...]]:
        """Valid values of the current number: [lo, hi] minus the excluded ones."""
        kind, _, _, values, nv, _ = state
        return (0, self.coord_max, ()) if kind == "v" else (1, nv, values)

    def step(self, state, c: str):
        """The state after character ``c``, or None if ``c`` breaks the grammar."""
        kind, field, digits, values, nv, nf = state
        if kind == "":
            if c == "v" and nf == 0:
                return ("v", -1, "", (), nv, nf)
            if c == "f" and nv >= 3 and nf < self.max_faces:
                return ("f", -1, "", (), nv, nf)
            return None
        if field == -1:
            return (kind, 0, "", values, nv, nf) if c == " " else None
        if c.isdigit():
            if digits == "0":
                return None  # no leading zeros
            d = digits + c
            lo, hi, excl = self._range(state)
            return (kind, field, d, values, nv, nf) if _viable(int(d), lo, hi, excl) else None
        if not digits:
            return None
        lo, hi, excl = self._range(state)
        n = int(digits)
        if not (lo <= n <= hi and n not in excl):
            return None
        if c == " " and field < 2:
            return (kind, field + 1, "", values + (n,), nv, nf)
        if c == "\n" and field == 2:
            return ("", -1, "", (), nv + (kind == "v"), nf + (kind == "f"))
        return None

    def advance(self, state, text: str):
        for c in text:
            state = self.step(state, c)
            if state is None:
                return None
        return state

    def need(self, state) -> int:
        """Tokens (one a character) that always suffice to finish a mesh from ``state``, EOS included."""
        kind, field, digits, values, nv, nf = state
        out = 0
        if kind:
            lo, hi, excl = self._range(state)
            width = len(str(max(hi, 1)))  # digits of any value of this line
            if field == -1:
                out += 1 + 3 * (width + 1)
            else:
                n = int(digits) if digits else None
                done = n is not None and lo <= n <= hi and n not in excl
                out += (0 if done else width - len(digits) if digits else width) + (2 - field) * (width + 1) + 1
            nv, nf = nv + (kind == "v"), nf + (kind == "f")
        out += max(0, 3 - nv) * len(MIN_V) + (len(MIN_F) if nf == 0 else 0)
        return out + 1

    # ------------------------------------------------------------------ tokens
    def allowed(self, state, left: int) -> np.ndarray:
        """Bool (vocab,): tokens that keep the text a valid prefix with a finished mesh still
        within ``left`` tokens (this one included)."""
        ok = np.zeros(self.vocab, dtype=bool)
        kind, field, digits = state[0], state[1], state[2]
        if kind == "" and state[5] > 0:
            ok[self.end_ids] = True
        # one token can raise the need by at most a fresh line's worth (twice, to be safe): far
        # from the end no candidate needs the check
        width = len(str(max(state[4], self.coord_max, 1))) + 1
        tight = left - 1 < self.need(state) + 2 * (3 * (width + 1) + 2)
        if kind and field >= 0 and digits != "0" and not tight:
            lo, hi, excl = self._range(state)
            cur = int(digits) if digits else 0
            val = cur * 10 ** self.digit_len + self.digit_val
            good = _viable_many(val, lo, hi, excl)
            if not digits:
                good &= ~self.digit_lead0
            ok[self.digit_ids[good]] = True
        if kind == "":
            firsts = "vf"
        elif field == -1:
            firsts = " "
        else:
            firsts = DIGITS + " \n"
        ids = [i for c in firsts for i in self.by_first[c]]
        if tight:
            ids += self.digit_ids.tolist()
        for i in ids:
            nxt = self.advance(state, self.texts[i])
            if nxt is not None and (not tight or self.need(nxt) <= left - 1):
                ok[i] = True
        return ok


def _viable(n: int, lo: int, hi: int, excl: tuple[int, ...]) -> bool:
    """Is some value in [lo, hi] (not excluded) written with ``n``'s digits as its prefix?
    (The values n * 10^j .. n * 10^j + 10^j - 1 are those; "0" has no longer form.)"""
    scale = 1
    while scale == 1 or n > 0:
        a, b = max(n * scale, lo), min(n * scale + scale - 1, hi)
        if b >= a and b - a + 1 > sum(a <= e <= b for e in excl):
            return True
        if scale > hi:
            break
        scale *= 10
    return False


def _viable_many(n: np.ndarray, lo: int, hi: int, excl: tuple[int, ...]) -> np.ndarray:
    ok = np.zeros(n.shape, dtype=bool)
    scale = 1
    while True:
        start = n * scale  # values n * 10^j .. n * 10^j + 10^j - 1 start with n's digits
        if scale > 1:
            start = np.where(n == 0, hi + 1, start)  # "0" cannot be extended
        a, b = np.maximum(start, lo), np.minimum(start + scale - 1, hi)
        count = np.maximum(b - a + 1, 0)
        for e in excl:
            count = count - ((e >= a) & (e <= b))
        ok |= count > 0
        if scale > hi:  # longer numbers all exceed hi
            return ok
        scale *= 10


class ObjConstraint:
    """``allowed(step, outputs) -> (B, vocab) bool`` for :func:`generate`: each row's grammar
    state is advanced with the text of the tokens it gained since the previous call."""

    def __init__(self, grammar: ObjGrammar, batch: int, budget: int) -> None:
        self.g, self.budget = grammar, budget
        self.states = [START] * batch
        self.seen = [0] * batch
        self.ended = [False] * batch

    def __call__(self, step: int, outputs: list[list[int]]) -> torch.Tensor:
        masks = []
        for r, out in enumerate(outputs):
            for t in out[self.seen[r]:]:
                if t in self.g.end_ids:
                    self.ended[r] = True
                elif not self.ended[r]:
                    self.states[r] = self.g.advance(self.states[r], self.g.texts[t])
            self.seen[r] = len(out)
            if self.ended[r] or self.states[r] is None:
                masks.append(np.ones(self.g.vocab, dtype=bool))
            else:
                masks.append(self.g.allowed(self.states[r], self.budget - len(out)))
        return torch.from_numpy(np.stack(masks))
