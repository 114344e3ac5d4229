"""The one harness the demo, the benchmark, the drills and the integration tests share."""
