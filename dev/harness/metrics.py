"""A worker's GET /metrics, parsed with prometheus_client's text parser."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class WorkerMetrics:
    """Every sample of one or more scrapes: (sample name, labels) -> value."""

    samples: dict[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str) -> WorkerMetrics:
        """Parse Prometheus text exposition."""
        samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(samples)

    @classmethod
    def combined(cls, scrapes: Iterable[WorkerMetrics]) -> WorkerMetrics:
        """The sum of several workers' samples (counters and histogram buckets add up)."""
        samples: dict[tuple[str, Labels], float] = {}
        for scrape in scrapes:
            for key, value in scrape.samples.items():
                samples[key] = samples.get(key, 0.0) + value
        return cls(samples)

    def flat(self) -> dict[str, float]:
        """Every sample as {'name{label="value",...}': value}, for a JSON report."""
        flat: dict[str, float] = {}
        for (name, labels), value in sorted(self.samples.items(), key=lambda s: str(s[0])):
            text = ",".join(f'{key}="{label}"' for key, label in sorted(labels))
            flat[f"{name}{{{text}}}" if text else name] = value
        return flat

    def value(self, name: str, **labels: str) -> float:
        """One sample's value; 0 when the worker has not exported it (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def by_label(self, name: str, label: str) -> Counter[str]:
        """A labelled counter as {label value: count}, e.g. rejections by code."""
        found: Counter[str] = Counter()
        for (sample, labels), value in self.samples.items():
            if sample == name:
                found[dict(labels).get(label, "")] += int(value)
        return found

    def count(self, name: str) -> int:
        """An unlabelled counter as an int."""
        return int(self.value(name))

    @property
    def events_consumed(self) -> int:
        """Records read from the input topic."""
        return self.count("stream_app_events_consumed_total")

    @property
    def handled(self) -> int:
        """Input records with an outcome: applied, skipped as duplicates, or rejected."""
        return (
            self.count("stream_app_events_applied_total")
            + self.count("stream_app_events_duplicate_total")
            + self.by_label("stream_app_events_rejected_total", "code").total()
        )

    @property
    def claims(self) -> int:
        """firstSession claims sent."""
        return self.count("stream_app_profile_claims_total")

    @property
    def verdicts(self) -> int:
        """firstSession verdicts read back by the session agent."""
        return self.count("stream_app_verdicts_consumed_total")

    def finished(self, records: int) -> bool:
        """Every one of `records` input records has an outcome and every claim its verdict."""
        return self.handled >= records and self.verdicts >= self.claims

    def progress(self) -> tuple[int, ...]:
        """What changes while a worker is still busy."""
        return (
            self.events_consumed,
            self.handled,
            self.count("stream_app_snapshots_sent_total"),
            self.claims,
            self.verdicts,
        )

    def histogram_bound(self, name: str, q: float) -> float | None:
        """Upper bound of the histogram bucket that holds quantile q.

        None when the histogram is empty or the quantile is beyond the last finite bucket.
        """
        count = self.value(f"{name}_count")
        if not count:
            return None
        buckets = sorted(
            (float(dict(labels)["le"]), value)
            for (sample, labels), value in self.samples.items()
            if sample == f"{name}_bucket"
        )
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound if math.isfinite(bound) else None
        return None

    def quantile(
        self, name: str, q: float, since: WorkerMetrics | None = None, **labels: str
    ) -> float | None:
        """Quantile q of a histogram, interpolated linearly inside its bucket (as Prometheus's
        histogram_quantile does), over the observations made after the scrape `since`.

        None when nothing was observed; the last finite bound when q falls in +Inf.
        """
        wanted = set(labels.items())

        def cumulative(scrape: WorkerMetrics | None) -> dict[float, float]:
            found: dict[float, float] = {}
            if scrape is None:
                return found
            for (sample, sample_labels), value in scrape.samples.items():
                if sample == f"{name}_bucket" and wanted <= set(sample_labels):
                    bound = float(dict(sample_labels)["le"])
                    found[bound] = found.get(bound, 0.0) + value
            return found

        now, before = cumulative(self), cumulative(since)
        buckets = sorted((bound, value - before.get(bound, 0.0)) for bound, value in now.items())
        if not buckets or buckets[-1][1] <= 0:
            return None
        rank = q * buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in buckets:
            if count >= rank:
                if not math.isfinite(bound):
                    return lower_bound
                share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, count
        return None
