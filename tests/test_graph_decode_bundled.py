"""--compile's graph-mode decode path (tests/graph_mode.py: forced on the CPU in its eager form)
gives the default path's outputs for every bundled autoregressive model, greedy and seeded, and
--compile reaches the loop from argen.load; samplers that are not next-token refuse it."""

import numpy as np
import pytest
import torch
from graph_mode import Calls, force_graphs

import argen
from argen.errors import UsageError

torch.set_num_threads(1)  # tiny models: threads only cost on a shared machine


@pytest.fixture
def forced_graphs(monkeypatch) -> Calls:
    return force_graphs(monkeypatch)


def both(pipe, calls: Calls, prompt, **flags):
    """(outputs with the default step, outputs with the graph-mode step) of one request."""
    pipe.compile = False
    plain = pipe(prompt, **flags)
    assert calls.graph_steps == 0
    pipe.compile = True
    graphed = pipe(prompt, **flags)
    assert calls.graph_steps > 0 and calls.compiled == []  # the graph step ran, nothing fell back
    calls.graph_steps = 0
    return plain, graphed


def loaded(name: str):
    pipe = argen.load(name, device="cpu", compile=True)
    assert pipe.compile  # from_ref keeps --compile for the loop
    return pipe


@pytest.mark.parametrize("temperature", [0.0, None])  # greedy; the model's seeded sampling
def test_image_next_token(forced_graphs, temperature):
    pipe = loaded("shapes-next-token")
    plain, graphed = both(pipe, forced_graphs, "a red circle in the top left", n=2, seed=3, temperature=temperature)
    for a, b in zip(plain, graphed):
        assert np.array_equal(a.pixels, b.pixels)
    assert not np.array_equal(plain[0].pixels, plain[1].pixels) or temperature == 0.0


@pytest.mark.parametrize("temperature", [0.0, None])
def test_audio_streams(forced_graphs, temperature):
    pipe = loaded("melodies-audio")
    plain, graphed = both(pipe, forced_graphs, None, n=1, seed=5, seconds=0.5, temperature=temperature)
    assert plain[0].samples.size > 0
    assert np.array_equal(plain[0].samples, graphed[0].samples)


@pytest.mark.parametrize("temperature", [0.0, None])
def test_mesh_under_its_grammar(forced_graphs, temperature):
    pipe = loaded("shapes3d-mesh")
    plain, graphed = both(pipe, forced_graphs, "a tall lamp", n=2, seed=1, max_faces=24, temperature=temperature)
    assert [o.tokens for o in plain] == [o.tokens for o in graphed]
    assert all(o.tokens for o in plain)


@pytest.mark.parametrize("temperature", [0.0, None])
def test_crystal(forced_graphs, temperature):
    pipe = loaded("crystal-perov5")
    plain, graphed = both(pipe, forced_graphs, "BaTiO3", n=2, seed=0, temperature=temperature, keep_invalid=True,
                          max_attempts=1, max_new_tokens=80)
    assert [o.text for o in plain] == [o.text for o in graphed]
    assert all(o.text for o in plain)


@pytest.mark.parametrize("name, says", [("shapes-next-scale", "samples next-scale"),
                                        ("bouncing-video", "samples by block diffusion")])
def test_other_samplers_refuse_compile_in_one_line(name, says):
    with pytest.raises(UsageError) as err:
        argen.load(name, device="cpu", compile=True)
    assert says in str(err.value) and "\n" not in str(err.value) and "drop --compile" in err.value.hint
