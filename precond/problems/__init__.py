"""Benchmark problems and offline real-data loaders."""
