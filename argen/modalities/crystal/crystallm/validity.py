"""The validity CDVAE and DiffCSP report: structural (every interatomic distance above 0.5 A,
cell volume above 0.1 A^3) and compositional (SMACT charge neutrality with the Pauling
electronegativity test). The structural rule is :func:`argen.modalities.crystal.checks.min_distance_ok`.

Facts from jiaor17/DiffCSP scripts/eval_utils.py (``smact_validity``, ``structure_validity``),
which lantunes/CrystaLLM bin/benchmark_metrics.py adapts: the element counts are divided by
their gcd; one element, or only metals (``smact.metals``), is valid; otherwise some assignment
of oxidation states (one per element, from SMACT's table; more than 1e7 combinations is
invalid) must make the reduced counts charge-neutral and pass ``smact.screening.pauling_test``
(cations less electronegative than anions; a missing electronegativity passes). DiffCSP ran a
SMACT release (2.x) whose ``Element.oxidation_states`` is the table SMACT 3+ names
``oxidation_states_smact14``; that table is used here so the numbers compare. The charge
balance with the counts given is ``sum(state * count) == 0``, which is what
``smact.neutral_ratios`` tests when the stoichiometry is given.

``smact`` is imported on use (the ``argen[crystal]`` extra).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from functools import cache

from argen.errors import ArgenError

MAX_COMBINATIONS = 1e7


def require_smact():
    try:
        import smact
    except ImportError:
        raise ArgenError("compositional validity needs SMACT (smact is missing)",
                         hint='pip install "argen[crystal]"') from None
    return smact


@cache
def _element(symbol: str) -> tuple[tuple[int, ...], float | None, bool]:
    """(SMACT 1.4 oxidation states, Pauling electronegativity, is a metal) of an element."""
    smact = require_smact()
    e = smact.Element(symbol)
    states = getattr(e, "oxidation_states_smact14", None)
    if states is None:  # SMACT before 3.0: the default table is this one
        states = e.oxidation_states
    return tuple(states or ()), e.pauling_eneg, symbol in smact.metals


def smact_valid(symbols: list[str]) -> bool:
    """Compositional validity of a list of atom symbols (one per site), e.g. ["Ba", "Ti", "O", "O", "O"]."""
    from smact.screening import pauling_test

    counter = Counter(symbols)
    elems = sorted(counter)
    if len(elems) == 1:
        return True
    counts = [counter[e] for e in elems]
    g = math.gcd(*counts)
    counts = [c // g for c in counts]
    info = [_element(e) for e in elems]
    if all(metal for _, _, metal in info):
        return True
    combos = 1
    for states, _, _ in info:
        combos *= len(states)
    if combos > MAX_COMBINATIONS:
        return False
    electronegs = [x for _, x, _ in info]
    for ox in itertools.product(*(states for states, _, _ in info)):
        if sum(o * c for o, c in zip(ox, counts)) != 0:
            continue
        try:
            if pauling_test(ox, electronegs):
                return True
        except TypeError:  # no electronegativity for an element: assumed fine
            return True
    return False

