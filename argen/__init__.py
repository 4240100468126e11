"""argen: autoregressive and block-diffusion generation for every modality, one engine, one CLI.

Python API (the CLI is a thin layer over it)::

    import argen
    pipe = argen.load("shapes-next-token", device="cpu")
    out = pipe("a red circle", n=2, seed=0)
    out[0].image        # a PIL image
    out[0].save("x.png")  # with the same metadata as `argen image`
"""

__version__ = "0.2.0.dev0"


def load(model=None, modality=None, **options):
    """Load a model's pipeline by registered name, hub id or folder (see
    :func:`argen.modalities.loading.load`); ``modality`` alone loads its bundled default."""
    from argen.modalities.loading import load as _load

    return _load(model, modality, **options)
