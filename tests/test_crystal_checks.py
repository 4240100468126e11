"""CrystaLLM-style preprocessing, post-processing (symmetry restored) and the validity checks."""

import builtins

import pytest

pytest.importorskip("pymatgen")

from pymatgen.analysis.structure_matcher import StructureMatcher  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from argen.errors import ArgenError  # noqa: E402
from argen.modalities.crystal.checks import check_cif, parse_structure, restore_symmetry  # noqa: E402
from argen.modalities.crystal.cif_text import structure_to_text  # noqa: E402

MATCHER = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def cubic_batio3() -> Structure:
    return Structure(Lattice.cubic(4.0), ["Ba", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def tetragonal_p4mm() -> Structure:
    # Ti and the apical O displaced along c: P4mm, sites O on 1b and 2c
    return Structure(Lattice.tetragonal(3.99, 4.04), ["Ba", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0.97], [0.5, 0, 0.49], [0, 0.5, 0.49]])


@pytest.fixture(scope="module")
def cubic_text() -> str:
    return structure_to_text(cubic_batio3())


def test_preprocessing_is_crystallm_form(cubic_text):
    lines = cubic_text.split("\n")
    assert lines[0] == "data_Ba1Ti1O3"
    assert lines[1:6] == ["loop_", "_atom_type_symbol", "_atom_type_electronegativity", "_atom_type_radius",
                          "_atom_type_ionic_radius"]
    assert lines[6].startswith("Ba 0.8900 ")  # electronegativity, 4 decimals, pymatgen's element order
    assert "_symmetry_space_group_name_H-M Pm-3m" in lines
    assert "_cell_length_a 4.0000" in lines and "_cell_volume 64.0000" in lines
    assert "_symmetry_equiv_pos_as_xyz\n1 'x, y, z'\nloop_" in cubic_text  # 48 operators collapsed
    assert cubic_text.endswith("O O2 3 0.0000 0.5000 0.5000 1\n\n") and "pymatgen" not in cubic_text


@pytest.mark.parametrize("make", [cubic_batio3, tetragonal_p4mm])
def test_post_processing_reproduces_the_structure(make):
    original = make()
    text = structure_to_text(original)
    cif = restore_symmetry(text)
    assert "_atom_type_electronegativity" not in cif  # the property block is gone
    assert cif.count("'x, y, z'") == 1 and cif.count("\n1 '") == 1
    rebuilt = parse_structure(cif)
    assert len(rebuilt) == 5 and MATCHER.fit(rebuilt, original)
    assert MATCHER.get_rms_dist(rebuilt, original)[0] < 1e-3
    report, structure = check_cif(text)
    assert report.valid, report.to_dict()
    assert structure is not None and report.spacegroup_found == ("Pm-3m" if make is cubic_batio3 else "P4mm")


def test_wrong_multiplicity_is_flagged(cubic_text):
    broken = cubic_text.replace("O O2 3 ", "O O2 2 ")
    assert broken != cubic_text
    report, _ = check_cif(broken)
    assert not report.multiplicity and not report.valid and report.formula


def test_overlapping_atoms_fail_the_bond_check(cubic_text):
    # Ti moved next to Ba: 0.35 A apart
    broken = cubic_text.replace("Ti Ti1 1 0.5000 0.5000 0.5000", "Ti Ti1 1 0.0500 0.0500 0.0500")
    assert broken != cubic_text
    report, _ = check_cif(broken.replace("Pm-3m", "P1").replace("Int_Tables_number 221", "Int_Tables_number 1"))
    assert not report.bonds and not report.valid


def test_wrong_space_group_is_flagged(cubic_text):
    # P23's operators rebuild the same five atoms, but spglib finds their full group, Pm-3m
    report, structure = check_cif(cubic_text.replace("H-M Pm-3m", "H-M P23"))
    assert structure is not None and len(structure) == 5 and report.spacegroup_found == "Pm-3m"
    assert not report.spacegroup and not report.valid
    assert report.formula and report.multiplicity and report.bonds


def test_a_group_that_rebuilds_other_atoms_fails_the_formula_check(cubic_text):
    # P4/mmm's operators make two of the three O sites: the cell holds BaTiO2, not the stated BaTiO3
    report, structure = check_cif(cubic_text.replace("H-M Pm-3m", "H-M P4/mmm"))
    assert structure is not None and structure.composition.reduced_formula == "BaTiO2"
    assert not report.formula and not report.valid


def test_inconsistent_formula_and_absurd_cell_are_flagged(cubic_text):
    assert not check_cif(cubic_text.replace("data_Ba1Ti1O3", "data_Ba1Ti1O2"))[0].formula
    report = check_cif(cubic_text.replace("_cell_angle_beta 90.0000", "_cell_angle_beta 175.0000"))[0]
    assert not report.cell and not report.valid


def test_garbage_is_reported_not_raised():
    report, structure = check_cif("data_Ba1Ti1O3\nloop_\n_atom_type_symbol\nPm-3m 4.0.0\n\n")
    assert structure is None and not report.valid and report.error


def test_missing_extra_is_one_clear_error(monkeypatch):
    from argen.modalities.crystal import cif_text as crystal

    real_import = builtins.__import__

    def no_spglib(name, *args, **kwargs):
        if name == "spglib":
            raise ImportError("no spglib", name="spglib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spglib)
    with pytest.raises(ArgenError) as e:
        crystal.require_pymatgen()
    assert "spglib" in str(e.value) and 'argen[crystal]' in e.value.hint


def test_a_group_that_rebuilds_hundreds_of_atoms_is_not_examined(cubic_text):
    # O on Fm-3m's general position: 192 copies; CrystaLLM's bond check would crawl over them
    text = cubic_text.replace("H-M Pm-3m", "H-M Fm-3m").replace("O O2 3 0.0000 0.5000 0.5000", "O O2 3 0.1230 0.2340 0.3450")
    report, structure = check_cif(text)
    assert structure is None and not report.valid and "more than 100 atoms" in report.error
