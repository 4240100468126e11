"""GPU kernels of the engine (Triton). Importing this package needs no Triton; each kernel's
module is imported on first use, and every caller keeps a PyTorch path for CPUs."""
