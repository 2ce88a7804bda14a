"""Benchmarks. Not part of the product: run with `make bench-intake` (see bench/README.md)."""
