"""Percentiles: the one definition behind every p50 / p95 citechat reports.

``citechat eval`` (evaluation.latency_summary, shown in report.md) and ``citechat
bench`` both call :func:`percentiles`, so their numbers mean the same thing: numpy's
default ``linear`` method, which interpolates between the two closest ranks (Hyndman
and Fan's type 7, also R's default and Excel's PERCENTILE.INC).  On ``n`` sorted
values ``x[0..n-1]`` the q-th percentile sits at position ``(n - 1) * q / 100``;
a fractional position takes that share of the gap to the next value.

It does not know what the values measure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

QUANTILES = (50, 95)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated.

    Position (5 - 1) * 0.95 = 3.8: 4 plus 0.8 of the gap from 4 to 100.

    >>> round(percentile([1, 2, 3, 4, 100], 95), 6)
    80.8
    >>> percentile([1, 2, 3, 4, 100], 50)
    3.0
    """
    if not len(values):
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def percentiles(
    values: Sequence[float], qs: Iterable[int] = QUANTILES, *, digits: int = 2
) -> dict[str, float]:
    """``{"p50": ..., "p95": ...}`` of ``values`` (:func:`percentile`), rounded to
    ``digits``; 0.0 each when there are no values.

    >>> percentiles([1, 2, 3, 4, 100])
    {'p50': 3.0, 'p95': 80.8}
    >>> percentiles([])
    {'p50': 0.0, 'p95': 0.0}
    """
    return {f"p{q}": round(percentile(values, q), digits) if len(values) else 0.0 for q in qs}
