"""CPU per event by component, from py-spy profiles of a worker draining a backlog.

    py-spy record -p <worker pid> --duration 12 --rate 200 --nonblocking --format raw -o P
    python -m dev.bench.components P=<CPU us/event of that run> [P2=<...> ...]

Each sample is given to the first component that one of its frames belongs to, reading from
the innermost frame out (so the core's functions count as core wherever they are called from),
and a component's CPU us/event is its share of the samples times the run's measured CPU per
event. py-spy samples the Python threads only: RocksDB's own background threads (flushes,
compactions) are in the measured total but in no component; docs/performance.md says how much.
"""

from __future__ import annotations

import sys
from collections import Counter

#: (component, substrings of a frame that belong to it), tried in this order for each frame.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metrics", ("stream_app/worker/metrics.py",)),
    ("statistics (source and combiner)", (
        "stream_app/worker/stats.py", "stream_app/domain/stats.py",
    )),
    ("retention (expiry index, sweep)", (
        "stream_app/worker/expiry.py", "stream_app/domain/retention.py",
    )),
    ("core", ("stream_app/domain/",)),
    ("rocksdb", (
        "LocalTable.get", "LocalTable.store_batch", "LocalTable.scan", "LocalTable.count",
        "rocksdict",
    )),
    ("commit", (
        "Checkpoint.commit", "Checkpoint._commit", "Writer.commit", "_commit_transaction",
        "transaction_manager",
    )),
    ("produce", (
        "stream_app/worker/overrides/sends.py", "aiokafka/producer", "changelog_records",
        "ChangelogFence",
    )),
    ("consume", (
        "aiokafka/consumer", "faust/transport/consumer.py", "faust/transport/drivers/aiokafka.py",
        "stream_app/worker/overrides/batching.py", "mode/threads.py",
    )),
    ("kafka protocol and sockets", (
        "aiokafka/protocol", "aiokafka/conn.py", "aiokafka/client.py", "aiokafka/record",
        "asyncio/streams.py", "asyncio/selector_events",
    )),
    ("session agent (batch state, outbox, guard)", (
        "stream_app/worker/sessions.py", "stream_app/worker/profiles.py",
        "stream_app/worker/ports.py", "stream_app/worker/dead_letters.py", "Checkpoint._handle",
        "Checkpoint._observe",
    )),
)  # fmt: skip
OTHER = "other (event loop, Faust's streams)"


def component_of(frames: list[str]) -> str:
    """The component of one sample (frames outermost first, as py-spy writes them)."""
    for frame in reversed(frames):
        for name, parts in COMPONENTS:
            if any(part in frame for part in parts):
                return name
    return OTHER


def shares(path: str) -> dict[str, float]:
    """Each component's share of a raw py-spy profile's samples."""
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8") as profile:
        for line in profile:
            stack, _, count = line.rstrip().rpartition(" ")
            if stack:
                counts[component_of(stack.split(";"))] += int(count)
    total = sum(counts.values())
    return {name: n / total for name, n in counts.items()}


def main(arguments: list[str]) -> None:
    runs = []
    for argument in arguments:
        path, _, cpu = argument.partition("=")
        runs.append((path, float(cpu), shares(path)))
    names = sorted({n for _, _, s in runs for n in s}, key=lambda n: -runs[0][2].get(n, 0.0))
    print(f"{'component':<44}" + "".join(f"{'share':>8}{'us/ev':>7}" for _ in runs))
    for name in names:
        cells = "".join(
            f"{100 * s.get(name, 0.0):7.1f}%{cpu * s.get(name, 0.0):7.1f}" for _, cpu, s in runs
        )
        print(f"{name:<44}{cells}")
    print(f"{'measured CPU us/event':<44}" + "".join(f"{'':>8}{cpu:7.1f}" for _, cpu, _ in runs))


if __name__ == "__main__":
    main(sys.argv[1:])
