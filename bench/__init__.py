"""Benchmarks run from the checkout (`python -m bench.<name>`); see bench/README.md."""
