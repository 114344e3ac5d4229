"""`python -m dev.drills` (= `make drill`): run the failure drills, print their figures.

    python -m dev.drills [--only kill9,state_wiped,...] [--quick] [--seed N] [--keep]

Needs a broker (STREAM_APP_BROKER, with the worker's default). broker_restart stops and starts the
project's local broker (deploy/kafka/kafka.sh), so it runs last and only against a local
broker. Results (figures, problems, worker logs) go to drill-results/<time>/; the exit status
is 1 when a drill failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dev.drills.drill import DrillOptions
from dev.drills.expiry import expiry, expiry_at_least_once
from dev.drills.scenarios import DRILLS as SCENARIOS
from dev.drills.scenarios import DrillResult
from dev.harness.kafka import bootstrap_from_env

DRILLS: dict[str, Callable[..., Awaitable[DrillResult]]] = {
    **SCENARIOS,
    "expiry": expiry,
    "expiry_at_least_once": expiry_at_least_once,
}
#: Sizes of the full drills and of the quick ones (the CI suite uses the quick sizes).
FULL: dict[str, dict[str, Any]] = {
    "chaos": {"events": 19_000, "sessions": 3_000, "workers": 2, "kills": 20},
    "chaos_at_least_once": {"events": 19_000, "sessions": 3_000, "workers": 2, "kills": 20},
    "kill9": {"events": 50_000, "sessions": 3_000, "kills": 20},
    "kill9_at_least_once": {"events": 30_000, "sessions": 3_000, "kills": 12},
    "state_wiped": {"events": 30_000, "sessions": 3_000},
    "failover": {"events": 30_000, "sessions": 3_000},
    "poison_flood": {"hostile": 10_000, "valid": 10_000},
    "broker_restart": {"events": 20_000, "sessions": 2_000},
    "expiry": {"sessions": 3_000, "kills": 8},
    "expiry_at_least_once": {"sessions": 3_000, "kills": 8},
}
QUICK: dict[str, dict[str, Any]] = {
    "chaos": {"events": 4_000, "sessions": 400, "workers": 2, "kills": 5},
    "chaos_at_least_once": {"events": 4_000, "sessions": 400, "workers": 2, "kills": 5},
    "kill9": {"events": 3_000, "sessions": 200, "kills": 3},
    "kill9_at_least_once": {"events": 3_000, "sessions": 200, "kills": 3},
    "state_wiped": {"events": 3_000, "sessions": 300, "after": 300},
    "failover": {"events": 4_000, "sessions": 300, "rate": 200.0},
    "poison_flood": {"hostile": 680, "valid": 1_000, "sessions": 100},
    "broker_restart": {"events": 4_000, "sessions": 300, "rate": 200.0},
    "expiry": {"sessions": 400, "kills": 2},
    "expiry_at_least_once": {"sessions": 400, "kills": 2},
}
#: Worker settings every drill uses: the default session timeout (60 s) makes every restart
#: after a kill -9 wait a minute for the dead member.
WORKER_ENV = {"STREAM_APP_SESSION_TIMEOUT": "10"}


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def render(result: DrillResult) -> str:
    """A drill's block in the report."""
    status = "PASS" if result.passed else "FAIL"
    lines = [f"== {result.name}: {status} ({result.seconds:.0f} s)"]
    lines.extend(f"   {key}: {json.dumps(value)}" for key, value in result.figures.items())
    if result.problems:
        lines.append("   problems:")
        lines.extend(f"     {problem}" for problem in result.problems)
    return "\n".join(lines)


async def run(
    names: list[str], options: DrillOptions, sizes: dict[str, dict[str, Any]]
) -> list[DrillResult]:
    """Run drills one after the other; a drill that raises is reported as failed."""
    results = []
    for name in names:
        drill: Callable[..., Awaitable[DrillResult]] = DRILLS[name]
        print(f"-- {name} ...", flush=True)
        started = time.monotonic()
        try:
            result = await drill(options, **sizes.get(name, {}))
        except Exception as exc:
            logging.getLogger(__name__).exception("drill %s raised", name)
            result = DrillResult(name, problems=[f"drill raised {exc!r}"])
            result.seconds = time.monotonic() - started
        print(render(result), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the drills, print and save the report."""
    parser = argparse.ArgumentParser(prog="python -m dev.drills", description=__doc__)
    order = [
        "chaos", "chaos_at_least_once", "kill9", "kill9_at_least_once", "state_wiped",
        "failover", "poison_flood", "expiry", "expiry_at_least_once", "broker_restart",
    ]  # fmt: skip
    parser.add_argument("--only", default=",".join(order), help="comma list of drills")
    parser.add_argument("--quick", action="store_true", help="the small sizes the CI suite uses")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep topics and data directories")
    parser.add_argument("--results", type=Path, default=None, help="default drill-results/<time>")
    parser.add_argument(
        "--set", action="append", default=[], metavar="DRILL.PARAM=VALUE",
        help="override a size, e.g. kill9.kills=5 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in DRILLS]
    if unknown:
        parser.error(f"unknown drills {unknown}; known: {order}")
    names.sort(key=order.index)
    sizes = {name: dict(values) for name, values in (QUICK if args.quick else FULL).items()}
    for item in args.set:
        target, _, value = item.partition("=")
        drill_name, _, param = target.partition(".")
        sizes.setdefault(drill_name, {})[param] = _value(value)
    root = args.results or Path("drill-results") / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=root / "drills.log",
    )
    options = DrillOptions(
        bootstrap=bootstrap_from_env(),
        root=root,
        seed=args.seed,
        keep=args.keep,
        worker_env=dict(WORKER_ENV),
    )
    print(f"drills {names} on {options.bootstrap}; results in {root}", flush=True)
    results = asyncio.run(run(names, options, sizes))
    report = "\n\n".join(render(result) for result in results)
    (root / "report.txt").write_text(report + "\n")
    (root / "results.json").write_text(
        json.dumps([result.__dict__ for result in results], indent=2, default=str) + "\n"
    )
    print("\nsummary:")
    for result in results:
        print(f"  {result.name:15} {'PASS' if result.passed else 'FAIL'}  {result.seconds:6.0f} s")
    return 0 if results and all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
