"""Benchmarks of the connector; ``python -m bench.run`` runs them and writes BENCHMARKS.md."""
