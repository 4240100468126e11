"""BD3-LM and MDLM folders in the official layout reproduce the reference code's logits and greedy
samples (tests/fixtures/bd3lm/reference.json, recorded by make_fixtures.py from kuleshov-group/bd3lms)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.modalities.text.bd3lm.dit import official_shapes
from argen.modalities.text.bd3lm.objective import block_diff_mask
from argen.modalities.text.block_diffusion.api import generate_blocks, is_block_diffusion, load_block_diffusion

FIXTURES = Path(__file__).parent / "fixtures" / "bd3lm"
REF = json.loads((FIXTURES / "reference.json").read_text())


def _random_state():
    spec = importlib.util.spec_from_file_location("bd3lm_make_fixtures", FIXTURES / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.random_state


def official_folder(root: Path, case: str) -> Path:
    """A folder as the hub holds it: config.json and model.safetensors with the reference's weights."""
    folder = root / case
    folder.mkdir()
    config = REF[case]["config"]
    (folder / "config.json").write_text(json.dumps(config))
    save_file(_random_state()(official_shapes(config)), str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module", params=["bd3lm", "mdlm"])
def loaded(request, tmp_path_factory):
    folder = official_folder(tmp_path_factory.mktemp("bd3"), request.param)
    return request.param, folder, load_block_diffusion(folder)


def test_logits_match_the_reference(loaded):
    case, _, model = loaded
    ref = REF[case]
    xt, x0 = torch.tensor(ref["xt"]), torch.tensor(ref["x0"])
    n = xt.shape[1]
    with torch.no_grad():
        sample = model.net(xt, pos=torch.arange(n).expand(2, n))
    assert (sample - torch.tensor(ref["sample_logits"])).abs().max() <= 1e-4
    if "train_logits" in ref:  # the training forward over [x_t, x_0] under BD3-LM's mask
        pos = torch.arange(n).repeat(2).expand(2, 2 * n)
        with torch.no_grad():
            train = model.net(torch.cat([xt, x0], 1), pos=pos, attn_mask=block_diff_mask(n, model.block_size)[None, None])
        assert (train[:, :n] - torch.tensor(ref["train_logits"])).abs().max() <= 1e-4


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_samples_match_the_reference(loaded, use_cache):
    case, _, model = loaded
    tokens, passes = generate_blocks(model, REF["prompts"], [0, 1], REF["new_tokens"], threshold=1.0,
                                     sampler="confidence", sampling=SamplingConfig(temperature=0.0),
                                     use_cache=use_cache)
    assert tokens == REF[case]["greedy"]
    # one token per pass: every masked position of every block touched costs a pass
    bs = model.block_size
    for p, n in zip(REF["prompts"], passes):
        assert n == -(-(len(p) % bs + REF["new_tokens"]) // bs) * bs - len(p) % bs


def test_family_is_read_from_config(loaded, tmp_path):
    case, folder, model = loaded
    assert is_block_diffusion(folder) and model.family == case
    assert model.block_size == (4 if case == "bd3lm" else 24) and model.mask_id == 40
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**REF[case]["config"], "n_blocks": 3}))
    (bad / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(ArgenError, match="weights do not match the config"):
        load_block_diffusion(bad)


def test_bad_requests_are_one_line_errors(loaded, char_model_dir):
    _, _, model = loaded
    with pytest.raises(UsageError, match="trained with blocks of") as e:
        generate_blocks(model, [[1, 2]], [0], 8, block_size=model.block_size * 2)
    assert "\n" not in str(e.value)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(UsageError, match=r"--threshold must be in \(0, 1\]"):
            generate_blocks(model, [[1, 2]], [0], 8, threshold=bad)
    with pytest.raises(UsageError, match="is an autoregressive model"):
        load_block_diffusion(char_model_dir)
