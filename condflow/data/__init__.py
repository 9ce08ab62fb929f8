"""Datasets: standard formats (Human3.6M lifting, SPIN/ProHMR npz) and synthetic generators."""

__all__: list[str] = []  # nothing re-exported: import from the modules
