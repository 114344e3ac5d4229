"""Development tooling: the demo, the benchmark, the failure drills and their harness.

Not part of the `stream-app` package: run it from the repository root (`python -m dev.demo`,
`python -m dev.bench`, `python -m dev.drills`). See docs/development.md.
"""

from pathlib import Path

#: The repository root (dev/ is never installed: it is only ever used from a checkout).
ROOT = Path(__file__).resolve().parent.parent
#: The project's local Kafka broker (start, stop, probe).
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"
