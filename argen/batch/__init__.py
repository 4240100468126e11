"""Batch generation from recipes: plan expansion, the manifest, and the executors."""
