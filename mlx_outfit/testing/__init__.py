"""Tiny randomly initialised models built from configs, for tests and benchmarks (no hub needed)."""
