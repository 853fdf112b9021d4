"""The servers Quiver is measured against, each run as ``python -m benchmarks.baselines.<name>``."""
