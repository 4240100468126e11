"""Crystals as CrystaLLM sees them: CSV splits of pymatgen CIFs, CrystaLLM's preprocessing into
training text, and its prompts.

Facts from lantunes/CrystaLLM: bin/prepare_csv_benchmark.py (benchmark CIFs are rewritten by
pymatgen's ``CifWriter`` with ``symprec=0.1``), bin/preprocess.py and crystallm/_utils.py (the
``data_`` header becomes the cell composition from ``_chemical_formula_sum`` without quotes or
spaces; the symmetry-operator loop is collapsed to ``1 'x, y, z'``; an ``_atom_type_*`` loop with
each element's electronegativity, atomic radius and average ionic radius, formatted ``% .4f`` and
elements in pymatgen's sort order, goes before ``_symmetry_space_group_name_H-M``; numbers with
more than 4 decimals are rounded to 4), bin/tokenize_cifs.py (lines stripped, empty, comment and
"pymatgen" lines dropped, the text ends in a blank line, which is how a sample ends), and
bin/make_prompt_file.py (the prompt is ``data_<comp.formula without spaces>\\n``, plus the
property block and the space-group line when a space group is given).

pymatgen is imported on use: it is the ``argen[crystal]`` extra.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from argen.errors import ArgenError, UsageError
from argen.modalities.crystal.tokenizer import ATOMS, SPACE_GROUPS

EXTRA_HINT = 'pip install "argen[crystal]"  (pymatgen, spglib and smact)'
# CrystaLLM's fallbacks where pymatgen has no value (noble gases)
NOBLE_VDW_RADII = {"He": 1.40, "Ne": 1.54, "Ar": 1.88, "Kr": 2.02, "Xe": 2.16, "Rn": 2.20}
ALLEN_ELECTRONEGATIVITY = {"He": 4.16, "Ne": 4.79, "Ar": 3.24}


def require_pymatgen():
    """Import pymatgen (and check spglib) or fail with one line naming the extra to install."""
    try:
        import pymatgen.core  # noqa: F401
        import spglib  # noqa: F401
    except ImportError as e:
        raise ArgenError(f"crystal generation needs pymatgen and spglib ({e.name} is missing)",
                         hint=EXTRA_HINT) from None
    return pymatgen


@dataclass
class CrystalRow:
    material_id: str
    cif: str  # the CSV's CIF (a pymatgen P1 cell)
    formula: str


def read_split(path: str | Path, limit: int | None = None) -> list[CrystalRow]:
    """Rows of a CDVAE-style CSV (columns material_id, cif, formula, ...), in file order."""
    from argen.io.files import check_file

    p = check_file(path, "split", hint="give a CDVAE-style CSV, e.g. perov_5/test.csv")
    try:
        f = p.open(newline="", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {p}: {e.strerror or e}", hint="give a CDVAE-style CSV, e.g. perov_5/test.csv") from None
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows: list[CrystalRow] = []
    with f:
        try:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "cif" not in reader.fieldnames:
                raise UsageError(f"{p} has no 'cif' column", hint="expected CDVAE's columns: material_id, cif, formula, ...")
            for i, r in enumerate(reader):
                if limit is not None and len(rows) >= limit:
                    break
                rows.append(CrystalRow(str(r.get("material_id") or i), r["cif"], r.get("formula") or ""))
        except UnicodeDecodeError as e:
            raise UsageError(f"{p} is not UTF-8 text (byte {e.object[e.start]:#04x} in row {len(rows) + 1})",
                             hint="save the file as UTF-8") from None
    return rows


# ----------------------------------------------------------------------------- preprocessing

def atomic_props_block(composition) -> str:
    """The ``_atom_type_*`` loop CrystaLLM writes for a pymatgen Composition (no oxidation states)."""
    from pymatgen.io.cif import CifBlock

    def fmt(v: float) -> str:
        return f"{float(v): .4f}"

    symbols, x, radius, ionic = [], [], [], []
    for el in sorted(composition.elements):
        s = str(el)
        symbols.append(s)
        x.append(ALLEN_ELECTRONEGATIVITY[s] if math.isnan(el.X) and s in ALLEN_ELECTRONEGATIVITY else fmt(el.X))
        radius.append(NOBLE_VDW_RADII[s] if el.atomic_radius is None and s in NOBLE_VDW_RADII else fmt(el.atomic_radius))
        ionic.append(fmt(el.average_ionic_radius))
    keys = ["_atom_type_symbol", "_atom_type_electronegativity", "_atom_type_radius", "_atom_type_ionic_radius"]
    block = CifBlock(dict(zip(keys, [symbols, x, radius, ionic])), [keys], "")
    return str(block).replace("data_\n", "")


def round_numbers(text: str, places: int = 4) -> str:
    """Numbers with more than ``places`` decimals rounded to ``places`` (shorter ones kept)."""
    def fix(m: re.Match) -> str:
        s = m.group()
        if len(s.split(".")[-1]) <= places:
            return s
        return format(round(float(s), places), f".{places}f")

    return re.sub(r"[-+]?\d*\.\d+([eE][-+]?\d+)?", fix, text)


def collapse_symmetry_ops(text: str) -> str:
    """The symmetry-operator loop reduced to the identity (CrystaLLM's 'semisymmetrized' CIF)."""
    return re.sub(r"(_symmetry_equiv_pos_as_xyz\n)(.*?)(?=\n(?:\S| \S))", r"\1  1  'x, y, z'", text, flags=re.DOTALL)


def clean_lines(text: str) -> str:
    """Strip lines, drop blank/comment/pymatgen lines, squeeze spaces; ends with a blank line."""
    lines = [re.sub(r"[ \t]+", " ", ln.strip()) for ln in text.split("\n")]
    lines = [ln for ln in lines if ln and not ln.startswith("#") and "pymatgen" not in ln]
    return "\n".join(lines) + "\n\n"


def cell_composition_header(text: str) -> str:
    m = re.search(r"_chemical_formula_sum\s+(.+)\n", text)
    if not m:
        raise ValueError("no _chemical_formula_sum in the CIF")
    comp = m.group(1).replace("'", "").replace(" ", "")
    return re.sub(r"(data_)(.*?)(\n)", lambda d: d.group(1) + comp + d.group(3), text, count=1)


def structure_to_text(structure, symprec: float = 0.1) -> str:
    """A pymatgen Structure -> CrystaLLM's training text (symmetrized CIF, ends in a blank line)."""
    from pymatgen.core import Composition
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(structure, symprec=symprec))
    text = cell_composition_header(text)
    text = collapse_symmetry_ops(text)
    comp = Composition(re.search(r"_chemical_formula_sum\s+'?([^'\n]+)'?", text).group(1))
    at = text.index("_symmetry_space_group_name_H-M")
    text = text[:at] + atomic_props_block(comp) + "\n" + text[at:]
    return clean_lines(round_numbers(text))


def cif_to_text(cif: str, symprec: float = 0.1) -> str:
    from pymatgen.core import Structure

    return structure_to_text(Structure.from_str(cif, fmt="cif"), symprec)


def split_texts(rows: list[CrystalRow], symprec: float = 0.1) -> list[str]:
    require_pymatgen()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [cif_to_text(r.cif, symprec) for r in rows]


# ----------------------------------------------------------------------------- prompts

def parse_composition(text: str, formula_units: int | None = None):
    """A cell composition from user text (``BaTiO3``, ``Na2Cl2``), times ``formula_units``; every
    element must be in CrystaLLM's vocabulary."""
    require_pymatgen()
    from pymatgen.core import Composition

    raw = (text or "").strip()
    if not raw:
        raise UsageError("--composition is empty", hint="give a formula such as BaTiO3")
    if not re.fullmatch(r"([A-Z][a-z]?\d*(\.\d+)?)+", raw):
        raise UsageError(f"cannot read composition {raw!r}", hint="write it as element symbols and counts, e.g. BaTiO3 or Na2Cl2")
    elements = re.findall(r"[A-Z][a-z]?", raw)
    unknown = [e for e in elements if e not in ATOMS]
    if unknown:
        from pymatgen.core import Element

        if Element.is_valid_symbol(unknown[0]):
            raise UsageError(f"element {unknown[0]!r} is outside CrystaLLM's vocabulary ({len(ATOMS)} elements)",
                             hint="its 89 elements are H to Pu except Po, At, Rn, Fr and Ra")
        raise UsageError(f"unknown element {unknown[0]!r} in {raw!r}",
                         hint="use element symbols CrystaLLM's vocabulary knows (e.g. Ba, Ti, O)")
    try:
        comp = Composition(raw)
    except Exception as e:  # pymatgen raises ValueError or its own errors
        raise UsageError(f"cannot read composition {raw!r} ({e})", hint="e.g. BaTiO3") from None
    if formula_units is not None:
        if formula_units < 1:
            raise UsageError(f"--formula-units must be at least 1, got {formula_units}", hint="e.g. --formula-units 2")
        comp = comp.reduced_composition * formula_units
    if any(abs(v - round(v)) > 1e-6 for v in comp.values()):
        raise UsageError(f"composition {raw!r} has fractional counts", hint="give whole atom counts per cell")
    return comp


def check_spacegroup(symbol: str | None) -> str | None:
    if symbol is None:
        return None
    s = symbol.strip().replace(" ", "")
    if s not in SPACE_GROUPS:
        near = [g for g in SPACE_GROUPS if g.lower() == s.lower()]
        hint = (f"did you mean {near[0]}?" if near
                else "use a Hermann-Mauguin symbol as pymatgen writes it, e.g. Pm-3m, P4/mmm, Fd-3m, P2_1/c")
        raise UsageError(f"unknown space group {symbol!r}", hint=hint)
    return s


def make_prompt(composition, spacegroup: str | None = None) -> str:
    """CrystaLLM's prompt: ``data_<cell composition>\\n``, with the space group also the property
    block and ``_symmetry_space_group_name_H-M <sg>\\n``."""
    comp = composition.formula.replace(" ", "")
    if spacegroup is None:
        return f"data_{comp}\n"
    text = f"data_{comp}\n{atomic_props_block(composition)}\n_symmetry_space_group_name_H-M {spacegroup}\n"
    text = re.sub(r"^[ \t]+|[ \t]+$", "", text, flags=re.MULTILINE)
    return re.sub(r"[ \t]+", " ", text)  # the tokenizer squeezes spaces too


def prompt_of_text(text: str, with_spacegroup: bool = False) -> str:
    """The prompt a preprocessed text starts with (CrystaLLM's bin/make_prompts.py)."""
    end = text.index("\n") + 1
    if with_spacegroup:
        m = re.search(r"_symmetry_space_group_name_H-M[^\n]*\n", text)
        end = m.end()
    return text[:end]
