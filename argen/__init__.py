"""argen: autoregressive and block-diffusion generation for every modality, one engine, one CLI."""

__version__ = "0.1.0"
