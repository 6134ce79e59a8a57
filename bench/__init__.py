"""Benchmarks: figures for the README, never pass/fail tests (run with `make bench`)."""
