"""Datasets: standard formats (Human3.6M lifting, SPIN/ProHMR npz) and synthetic generators."""
