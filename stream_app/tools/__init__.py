"""Operational tooling shared by the demo, the benchmark, the drills and the integration tests."""
