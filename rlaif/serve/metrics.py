"""The service's counters, written as Prometheus text (exposition format 0.0.4) by hand.

Counters and the latency histogram are updated by the request handlers on the one event loop
(no lock needed); the judge's own totals (HTTP attempts, USD) are read from `judge.usage()`
when /metrics is scraped. Every name starts with `rlaif_serve_`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

# Seconds; a local batch takes milliseconds, an API judge with retries tens of seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in pairs]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Histogram:
    """Cumulative buckets, sum and count, one series per label tuple."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.series: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def observe(self, value: float, labels: tuple[tuple[str, str], ...] = ()) -> None:
        """Count one observation."""
        counts = self.series.setdefault(labels, [0.0] * (len(self.buckets) + 2))  # buckets, sum, count
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-2] += value
        counts[-1] += 1

    def lines(self, name: str) -> list[str]:
        """The `_bucket`, `_sum` and `_count` sample lines."""
        out = []
        for labels, counts in sorted(self.series.items()):
            for bound, n in zip((*self.buckets, math.inf), (*counts[:len(self.buckets)], counts[-1])):
                out.append(f"{name}_bucket{_labels((*labels, ('le', _number(bound))))} {_number(n)}")
            out.append(f"{name}_sum{_labels(labels)} {_number(counts[-2])}")
            out.append(f"{name}_count{_labels(labels)} {_number(counts[-1])}")
        return out


class ServeMetrics:
    """What /metrics reports: requests, samples, latency, batches, cache hits, unscored, cost."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (endpoint, status code)
        self.samples: dict[str, int] = defaultdict(int)
        self.unscored: dict[str, int] = defaultdict(int)
        self.cache_hits: dict[str, int] = defaultdict(int)
        self.filled = 0  # OpenRLHF samples answered with --unscored-fill
        self.rejected: dict[str, int] = defaultdict(int)  # reason -> requests
        self.judge_errors: dict[str, int] = defaultdict(int)  # error type -> batches
        self.in_flight = 0
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests[(endpoint, str(status))] += 1
        self.latency.observe(seconds, (("endpoint", endpoint),))

    def batch_done(self, samples: int, seconds: float, error: Exception | None) -> None:
        """Count one judge call (a coalesced batch, or one request's samples)."""
        self.batch_size.observe(samples)
        if error is not None:
            self.judge_errors[type(error).__name__] += 1

    def render(self, judge_name: str, usage: Callable[[], object], queued: int) -> str:
        """The whole exposition text."""
        u = usage()
        out: list[str] = []

        def family(name: str, kind: str, doc: str, rows: Iterable[tuple[tuple[tuple[str, str], ...], float]]) -> None:
            out.append(f"# HELP {name} {doc}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{_labels(labels)} {_number(v)}" for labels, v in rows)

        family("rlaif_serve_info", "gauge", "The judge this service holds.", [((("judge", judge_name),), 1)])
        family("rlaif_serve_requests_total", "counter", "HTTP requests answered, by endpoint and status code.",
               [((("endpoint", e), ("code", c)), n) for (e, c), n in sorted(self.requests.items())])
        family("rlaif_serve_samples_total", "counter", "Samples (or pairs) received, by endpoint.",
               [((("endpoint", e),), n) for e, n in sorted(self.samples.items())])
        family("rlaif_serve_unscored_total", "counter", "Samples the judge could not score, by endpoint.",
               [((("endpoint", e),), n) for e, n in sorted(self.unscored.items())])
        family("rlaif_serve_unscored_filled_total", "counter",
               "OpenRLHF samples answered with the configured --unscored-fill value.", [((), self.filled)])
        family("rlaif_serve_cache_hits_total", "counter", "Samples answered from the score cache, by endpoint.",
               [((("endpoint", e),), n) for e, n in sorted(self.cache_hits.items())])
        family("rlaif_serve_rejected_total", "counter", "Requests refused, by reason.",
               [((("reason", r),), n) for r, n in sorted(self.rejected.items())])
        family("rlaif_serve_judge_errors_total", "counter", "Judge calls that stopped with an error, by type.",
               [((("error", e),), n) for e, n in sorted(self.judge_errors.items())])
        family("rlaif_serve_judge_requests_total", "counter",
               "HTTP attempts the judge made to its API (retries included).", [((), getattr(u, "requests", 0))])
        family("rlaif_serve_cost_usd_total", "counter", "What the judge's API calls cost, in USD.",
               [((), getattr(u, "cost_usd", 0.0))])
        family("rlaif_serve_in_flight_requests", "gauge", "Requests being handled now.", [((), self.in_flight)])
        family("rlaif_serve_queued_samples", "gauge", "Samples waiting or being judged now.", [((), queued)])
        out.append("# HELP rlaif_serve_request_latency_seconds Request latency, receipt to answer, by endpoint.")
        out.append("# TYPE rlaif_serve_request_latency_seconds histogram")
        out.extend(self.latency.lines("rlaif_serve_request_latency_seconds"))
        out.append("# HELP rlaif_serve_batch_samples Samples per judge call (coalesced batches).")
        out.append("# TYPE rlaif_serve_batch_samples histogram")
        out.extend(self.batch_size.lines("rlaif_serve_batch_samples"))
        return "\n".join(out) + "\n"
