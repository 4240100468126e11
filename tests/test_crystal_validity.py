"""Compositional and structural validity as CDVAE/DiffCSP report them."""

import itertools

import pytest

pytest.importorskip("pymatgen")
smact = pytest.importorskip("smact")

from argen.modalities.crystal.crystallm.validity import smact_valid  # noqa: E402


def diffcsp_rule(symbols):
    """DiffCSP's smact_validity written with SMACT's own neutral_ratios (its stoichiometry given)."""
    from collections import Counter
    from math import gcd

    from smact.screening import pauling_test

    c = Counter(symbols)
    elems = sorted(c)
    if len(elems) == 1:
        return True
    g = 0
    for e in elems:
        g = gcd(g, c[e])
    counts = [c[e] // g for e in elems]
    space = [smact.Element(e) for e in elems]
    if all(e in smact.metals for e in elems):
        return True
    for ox in itertools.product(*(e.oxidation_states_smact14 for e in space)):
        if smact.neutral_ratios(ox, stoichs=[(n,) for n in counts], threshold=max(counts)):
            try:
                if pauling_test(ox, [e.pauling_eneg for e in space]):
                    return True
            except TypeError:
                return True
    return False


@pytest.mark.parametrize("symbols,valid", [
    (["Ba", "Ti", "O", "O", "O"], True),
    (["Na", "Cl"], True),
    (["Na", "Na", "Cl"], False),  # no charge balance
    (["Fe", "Ni"], True),  # an alloy: metals only
    (["O", "O"], True),  # one element
    (["Ta", "Sb", "N", "N", "O"], True),
    (["Ba", "Ba", "O"], False),
    (["F", "Cs", "Cs"], False),
])
def test_smact_validity(symbols, valid):
    assert smact_valid(symbols) is valid
    assert diffcsp_rule(symbols) is valid


def test_matches_the_rule_written_with_smact_on_perovskite_formulas():
    cations = ["Ba", "Sr", "Ca", "La", "Ti", "Zr", "Nb", "Ta", "Al", "Fe", "K", "Sb", "Bi", "Y"]
    anions = [["O", "O", "O"], ["O", "O", "N"], ["O", "N", "N"], ["O", "O", "F"], ["N", "N", "N"], ["O", "O", "S"]]
    for a, b in itertools.combinations(cations, 2):
        for x in anions:
            assert smact_valid([a, b, *x]) == diffcsp_rule([a, b, *x]), (a, b, x)
