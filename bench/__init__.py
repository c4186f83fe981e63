"""Benchmarks: `python -m bench.run_all [--quick] [NAME ...]` (`make bench`). Figures go to stdout."""
