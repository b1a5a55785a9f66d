"""Benchmarks. `python -m bench`: the lecture's pipeline against the service's engine, and one job's overhead."""
