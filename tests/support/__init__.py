"""Test and benchmark scaffolding: servers, the oracle, change generators, the pipeline harness.

Not part of the installed product: tests and benchmarks import it from the repo root.
"""
