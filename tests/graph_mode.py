"""``--compile``'s CUDA decode path forced on the CPU in its eager form (a static KV cache in graph
mode, the one-token step with fixed shapes; only the CUDA graph capture itself is left out), for
the tests that check every autoregressive family gives the same tokens through it."""

from __future__ import annotations

from dataclasses import dataclass, field

from argen.engine.sampling import next_token, speculative
from argen.engine.sampling.step import graph_decoder


@dataclass
class Calls:
    graph_steps: int = 0  # one-token steps through the graph-mode decoder
    compiled: list[str] = field(default_factory=list)  # functions handed to torch.compile (dynamic shapes)


def force_graphs(monkeypatch) -> Calls:
    """(For a test's fixture.) The loops' graph rule without its CUDA condition, the graph step uncompiled, and
    torch.compile with dynamic shapes replaced by the function itself (inductor is far too slow
    on CPUs for tests): what ran is counted in the returned :class:`Calls`."""
    calls = Calls()

    def rule(device, compile, use_cache, sliding, compact) -> bool:
        return compile and use_cache and not sliding and not compact

    def eager_graph_decoder():
        step = graph_decoder(compiled=False)

        def counted(*args, **kwargs):
            calls.graph_steps += 1
            return step(*args, **kwargs)

        return counted

    def uncompiled(fn=next_token.decode_one_token):
        calls.compiled.append(fn.__name__)
        return fn

    for module in (next_token, speculative):
        monkeypatch.setattr(module, "use_graphs", rule)
        monkeypatch.setattr(module, "graph_decoder", eager_graph_decoder)
        monkeypatch.setattr(module, "compiled_decoder", uncompiled)
    return calls
