"""The bundled block-diffusion model `shakespeare-bd3` loads by name (its files checked against
weights/registry.yaml) and writes text through `argen text`, block by block, within the passes its
config allows, the same tokens as the Python API."""

import json

from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.text.block_diffusion.api import default_sampling, generate_blocks, load_block_diffusion

PROMPT, NEW = "ROMEO:", 48


def test_shakespeare_bd3_generates_through_the_cli(cli):
    code, out, err = cli("text", "--model", "shakespeare-bd3", "-p", PROMPT, "--max-new-tokens", NEW, "--seed", "0",
                         "--json")
    assert code == 0, err
    rec = json.loads(out.strip().splitlines()[-1])
    model = load_block_diffusion("shakespeare-bd3")
    assert model.family == "argen-bd3" and model.block_size == 8 and model.defaults["steps"] == 4
    p = model.tokenizer.encode(PROMPT)
    blocks = -(-(len(p) + NEW) // 8) - len(p) // 8  # the blocks the new tokens touch
    assert rec["new_tokens"] == NEW and 0 < rec["forward_passes"] <= 4 * blocks  # at most `steps` passes a block
    assert rec["forward_passes"] < NEW  # parallel: fewer passes than tokens
    tokens, passes = generate_blocks(model, [p], [0], NEW)  # the model's defaults, as the CLI uses them
    assert rec["text"] == model.tokenizer.decode(tokens[0]) and rec["forward_passes"] == passes[0]
    assert model.mask_id not in tokens[0]
    assert default_sampling(model) == SamplingConfig(temperature=0.8, top_p=None)
    assert "forward passes per token" in err
