"""Benchmarks (not tests): ``python -m bench api``."""
