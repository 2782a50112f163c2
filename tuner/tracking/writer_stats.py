"""How well the tracking writer keeps up with the trials: points written, how long they
waited between a trial's report and MLflow (lag), and how long the driver was held back
by a full queue (back-pressure). Bounded in memory, however long the sweep."""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass, field

# The lags of the latest writes, for quantiles: enough for a stable p95, bounded memory.
LAG_SAMPLES = 4096


@dataclass
class WriterStats:
    operations: int = 0  # results, run starts and ends, tags: everything submitted and written
    points: int = 0  # metric points written
    writes: int = 0  # a run's pending operations written together: a request or a few
    max_lag_s: float = 0.0
    backpressure_s: float = 0.0  # time submit() waited on a full queue
    _lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_writes(self, submitted_at: list[float], points: int, done_at: float) -> None:
        """A run's pending operations are written: each waited from its submission till now."""
        lags = [done_at - at for at in submitted_at]
        with self._lock:
            self.operations += len(lags)
            self.points += points
            self.writes += 1
            self._lags.extend(lags)
            self.max_lag_s = max(self.max_lag_s, *lags, 0.0)

    def reset(self) -> None:
        """Count from now on (a benchmark's steady state, after its runs were created)."""
        with self._lock:
            self.operations = self.points = self.writes = 0
            self.max_lag_s = self.backpressure_s = 0.0
            self._lags.clear()

    def record_backpressure(self, waited_s: float) -> None:
        with self._lock:
            self.backpressure_s += waited_s

    def lag_quantile(self, q: float) -> float:
        """The q-quantile (0 < q < 1) of the latest operations' lags, in seconds."""
        with self._lock:
            lags = sorted(self._lags)
        if not lags:
            return 0.0
        if len(lags) == 1:
            return lags[0]
        return statistics.quantiles(lags, n=100, method="inclusive")[round(q * 100) - 1]
