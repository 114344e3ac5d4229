"""Failure drills: crash, wipe, broker restart, failover and poison records on a real broker.

`python -m dev.drills` (`make drill`) runs them all with full sizes and prints their
figures; tests/integration/test_drills.py runs small versions in the CI suite. What each drill
does and its figures are in docs/drills.md; what they found, in docs/design.md.
"""
