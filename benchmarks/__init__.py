"""Benchmarks the harness evaluates against: NAS-Bench-101 and the NAS-Bench-1Shot1 spaces."""
