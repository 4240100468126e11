"""Post-processing and validity checks for generated CIFs (pymatgen and spglib, imported on use).

Facts from lantunes/CrystaLLM: bin/postprocess.py and crystallm/_utils.py (post-processing puts
back the space group's symmetry operators, from pymatgen's ``SpaceGroup(symbol).symmetry_ops``
as xyz strings, in place of the identity-only loop, unless the group is ``P 1``, and removes the
atom-property block), and crystallm/_metrics.py (a CIF is valid when its ``data_`` formula,
``_chemical_formula_sum`` and ``_chemical_formula_structural`` reduce to the same formula (here
the atoms rebuilt from the symmetry operators must too), the
site multiplicities add up to ``_chemical_formula_sum``, every CrystalNN bond is within 32% of
the expected length (ionic radii for an electronegativity difference of 1.7 or more, atomic radii
otherwise; bonds to H only need a ratio under 2.5), and spglib at symprec 0.1 finds the stated
space group; a sensible cell has lengths in [0.5, 1000] A and angles in [10, 170] degrees).
The minimum-distance (0.5 A) screen before matching is DiffCSP's ``structure_validity``, which
CrystaLLM's bin/benchmark_metrics.py applies.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass

from argen.modalities.crystal.cif_text import require_pymatgen

CHECKS = ("formula", "multiplicity", "bonds", "spacegroup", "cell")
MAX_SITES = 100  # larger cells are refused unexamined (Perov-5 has 5 atoms, MPTS-52 at most 52)


@dataclass
class CheckReport:
    formula: bool = False
    multiplicity: bool = False
    bonds: bool = False
    spacegroup: bool = False
    cell: bool = False
    bond_score: float | None = None
    spacegroup_found: str | None = None
    error: str | None = None  # why the CIF could not be read, if it could not

    @property
    def valid(self) -> bool:
        return all(getattr(self, c) for c in CHECKS)

    def failed(self) -> list[str]:
        return [c for c in CHECKS if not getattr(self, c)]

    def to_dict(self) -> dict:
        return {**asdict(self), "valid": self.valid}


# ----------------------------------------------------------------------------- small extractors

def _field(text: str, key: str) -> str | None:
    m = re.search(rf"^{re.escape(key)}[ \t]+('([^'\n]*)'|(\S+))", text, flags=re.MULTILINE)
    return None if m is None else (m.group(2) if m.group(2) is not None else m.group(3))


def spacegroup_symbol(text: str) -> str | None:
    return _field(text, "_symmetry_space_group_name_H-M")


def data_formula(text: str) -> str | None:
    m = re.search(r"data_([A-Za-z0-9.]+)\n", text)
    return m.group(1) if m else None


def cell_params(text: str) -> dict[str, float]:
    out = {}
    for key in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"):
        v = _field(text, f"_cell_{key}")
        if v is not None:
            out[key] = float(v)
    return out


def site_rows(text: str) -> list[tuple[str, int]]:
    """(type symbol, multiplicity) of each row of the ``_atom_site_*`` loop."""
    m = re.search(r"loop_\n((?:_atom_site_\w+\n)+)(.*?)(?:\n\n|\nloop_|\Z)", text, flags=re.DOTALL)
    if m is None:
        return []
    keys = m.group(1).split()
    if "_atom_site_type_symbol" not in keys or "_atom_site_symmetry_multiplicity" not in keys:
        return []
    ti, mi = keys.index("_atom_site_type_symbol"), keys.index("_atom_site_symmetry_multiplicity")
    rows = []
    for line in m.group(2).strip().split("\n"):
        parts = line.split()
        if len(parts) != len(keys):
            raise ValueError(f"atom-site row with {len(parts)} fields, expected {len(keys)}: {line!r}")
        rows.append((parts[ti], int(parts[mi])))
    return rows


# ----------------------------------------------------------------------------- post-processing

def _xyz(op) -> str:
    # renamed as_xyz_str in recent pymatgen
    return op.as_xyz_str() if hasattr(op, "as_xyz_str") else op.as_xyz_string()


def restore_symmetry(text: str) -> str:
    """Put the space group's operators back in place of the identity-only loop, and remove the
    atom-property block: a CIF any reader expands to the full cell."""
    require_pymatgen()
    from pymatgen.symmetry.groups import SpaceGroup

    sg = spacegroup_symbol(text)
    if sg is not None and sg.replace(" ", "") != "P1":
        ops = [_xyz(op) for op in SpaceGroup(sg).symmetry_ops]
        rows = "\n".join(f"{i} '{op}'" for i, op in enumerate(ops, 1))
        text = re.sub(r"(_symmetry_equiv_pos_as_xyz\n)\s*1\s+'x, y, z'\n",
                      lambda m: m.group(1) + rows + "\n", text, count=1)
    return re.sub(r"(data_[^\n]*\n)loop_\n_atom_type_symbol[\s\S]*?(_symmetry_space_group_name_H-M)", r"\1\2", text, count=1)


def rebuilt_sites(text: str) -> int:
    """How many atoms the space group's operators make of the atom-site rows (duplicates within
    1e-3 merged), without pymatgen's CIF parser, which is slow on hundreds of near-duplicates."""
    import numpy as np
    from pymatgen.symmetry.groups import SpaceGroup

    sg = spacegroup_symbol(text)
    ops = [] if sg is None or sg.replace(" ", "") == "P1" else SpaceGroup(sg).symmetry_ops
    m = re.search(r"_atom_site_occupancy\n(.*?)(?:\n\n|\Z)", text, flags=re.DOTALL)
    total = 0
    for line in (m.group(1).strip().split("\n") if m else []):
        xyz = np.array([float(v) for v in line.split()[3:6]])
        pts = np.array([op.operate(xyz) for op in ops]) if ops else xyz[None]
        total += len(np.unique(np.round(pts % 1.0, 3) % 1.0, axis=0))
    return total


def parse_structure(cif: str):
    """A pymatgen Structure from (post-processed) CIF text."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(cif, fmt="cif")


# ----------------------------------------------------------------------------- checks

def formula_consistent(text: str) -> bool:
    from pymatgen.core import Composition

    parts = [data_formula(text), _field(text, "_chemical_formula_sum"), _field(text, "_chemical_formula_structural")]
    if any(p is None for p in parts):
        return False
    return len({Composition(p).reduced_formula for p in parts}) == 1


def multiplicity_consistent(text: str) -> bool:
    from pymatgen.core import Composition

    total: dict[str, int] = {}
    for symbol, mult in site_rows(text):
        total[symbol] = total.get(symbol, 0) + mult
    expected = {str(k): v for k, v in Composition(_field(text, "_chemical_formula_sum")).items()}
    return bool(total) and total == expected


def bond_score(structure, tolerance: float = 0.32, h_factor: float = 2.5) -> float:
    """Share of CrystalNN bonds whose length is within ``tolerance`` of the expected length."""
    from pymatgen.analysis.local_env import CrystalNN

    nn = CrystalNN()
    good = count = 0
    with warnings.catch_warnings():  # CrystalNN warns about missing oxidation states on every site
        warnings.simplefilter("ignore")
        infos = [nn.get_nn_info(structure, i) for i in range(len(structure))]
    for i, site in enumerate(structure):
        for info in infos[i]:
            if info["site_index"] == i:
                continue
            other = info["site"]
            a, b = site.specie, other.specie
            length = site.distance(other)
            if abs(a.X - b.X) >= 1.7:  # mostly ionic: cation plus anion radius
                cat, an = (a, b) if a.X < b.X else (b, a)
                expected = cat.average_cationic_radius + an.average_anionic_radius
            else:
                expected = a.atomic_radius + b.atomic_radius
            ratio = length / expected
            if "H" in (a.symbol, b.symbol):
                good += ratio < h_factor
            else:
                good += 1 - tolerance < ratio < 1 + tolerance
            count += 1
    return good / count if count else 0.0


def min_distance_ok(structure, cutoff: float = 0.5) -> bool:
    import numpy as np

    if structure.volume < 0.1:
        return False
    if len(structure) < 2:
        return True
    d = structure.distance_matrix + np.eye(len(structure)) * (cutoff + 10.0)
    return bool(d.min() >= cutoff)


def sensible_cell(text: str, length_lo=0.5, length_hi=1000.0, angle_lo=10.0, angle_hi=170.0) -> bool:
    p = cell_params(text)
    if len(p) != 6:
        return False
    lengths_ok = all(length_lo <= p[k] <= length_hi for k in ("length_a", "length_b", "length_c"))
    return lengths_ok and all(angle_lo <= p[k] <= angle_hi for k in ("angle_alpha", "angle_beta", "angle_gamma"))


def check_cif(text: str) -> tuple[CheckReport, object | None]:
    """Run every check on a generated CIF (raw or post-processed); returns the report and the
    parsed structure (None when it cannot be read)."""
    require_pymatgen()
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    r = CheckReport()
    for name, fn in (("formula", formula_consistent), ("multiplicity", multiplicity_consistent), ("cell", sensible_cell)):
        try:
            setattr(r, name, bool(fn(text)))
        except Exception:  # noqa: BLE001 - a malformed field fails the check
            setattr(r, name, False)
    try:
        if rebuilt_sites(text) > MAX_SITES:  # a wrong group can rebuild hundreds of atoms
            raise ValueError(f"the symmetry operators make more than {MAX_SITES} atoms")
        structure = parse_structure(restore_symmetry(text))
        if len(structure) == 0:
            raise ValueError("no atoms")
    except Exception as e:  # noqa: BLE001 - generated text may be anything
        r.error = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return r, None
    try:  # the atoms the symmetry operators rebuild must have the stated formula too
        from pymatgen.core import Composition

        r.formula = r.formula and structure.composition.reduced_formula == Composition(data_formula(text)).reduced_formula
    except Exception:  # noqa: BLE001
        r.formula = False
    if len(structure) > MAX_SITES:  # a wrong group can rebuild hundreds of atoms; CrystalNN would crawl
        r.error = f"{len(structure)} atoms in the cell (more than {MAX_SITES}): bond check skipped"
        return r, structure
    try:
        r.bond_score = round(bond_score(structure), 4)
        r.bonds = r.bond_score >= 1.0 and min_distance_ok(structure)
    except Exception as e:  # noqa: BLE001
        r.error = f"bond check failed: {e}"[:200]
    try:
        found = SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_symbol()
        r.spacegroup_found = found
        stated = spacegroup_symbol(text)
        r.spacegroup = stated is not None and stated.strip() == found.strip()
    except Exception as e:  # noqa: BLE001
        r.error = f"space-group check failed: {e}"[:200]
    return r, structure
