"""The bundled text models keep the quality their model cards state."""

import json

import pytest
from conftest import SHAKESPEARE

from argen.checkpoints.argen_format import read_json
from argen.checkpoints.registry import bundled_dir

pytestmark = pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="needs ../shared/data/text/tinyshakespeare.txt")


@pytest.mark.parametrize("name, ceiling", [("shakespeare-char", 1.60), ("shakespeare-char-draft", 2.0)])
def test_validation_loss_reproduces_the_model_card(cli, name, ceiling):
    code, out, err = cli("eval", "text", "--model", name, "--data", SHAKESPEARE, "--json", "--quiet")
    assert code == 0, err
    loss = json.loads(out)["val_loss"]
    recorded = read_json(bundled_dir() / name / "config.json")["training"]["val_loss"]
    assert abs(loss - recorded) < 2e-3
    assert loss <= ceiling


def test_default_model_writes_shakespeare(cli):
    code, out, err = cli("text", "--prompt", "ROMEO:", "--max-new-tokens", "200", "--seed", "0", "--no-stream")
    assert code == 0, err
    words = out.split()
    common = {"the", "and", "I", "to", "of", "my", "a", "you", "that", "is", "in", "not", "me", "with", "it", "be"}
    assert sum(w.strip(",.;:!?").lower() in {c.lower() for c in common} for w in words) >= 5, out
