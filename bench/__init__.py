"""Benchmarks: each prints its figures side by side with a baseline, as ratios. Not tests."""
