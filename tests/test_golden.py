"""Same bytes: the bundled models' outputs for a fixed set of commands (tests/golden.py) equal
the sha256 recorded before the modality contract landed."""

import json

import pytest
from golden import RECORD, run_all


@pytest.mark.slow
def test_bundled_outputs_are_byte_identical_to_the_record(tmp_path):
    recorded = json.loads(RECORD.read_text())
    got = run_all(tmp_path)
    assert set(got) == set(recorded)
    for case, files in recorded.items():
        assert got[case] == files, f"{case}: outputs differ from the record"
