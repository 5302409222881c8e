"""How much more training a learning curve asks for: a straight line in log-time through its later points.

Validation F1 against training minutes rises roughly linearly in log(minutes) once the first
minutes are past (notebook 12's curves), so

    F1(m) ≈ a + b · ln m          (least squares over the points with m ≥ ``from_fraction`` · the last m)

and the minutes a curve needs to reach a target are m* = exp((target − a) / b). A log-linear trend
is a generous extrapolation (real curves flatten further): read m* as a lower bound on the time
needed, not a promise, and only where b > 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogTrend:
    """F1 ≈ a + b · ln(minutes), fitted on ``points`` of a curve (minutes from, to)."""

    a: float
    b: float
    start: float
    end: float
    points: int

    def at(self, minutes: float) -> float:
        """The trend's F1 at ``minutes``."""
        return self.a + self.b * math.log(minutes)

    def minutes_to(self, target: float) -> float:
        """Training minutes at which the trend reaches ``target`` (inf where it does not rise)."""
        if self.at(self.end) >= target:
            return self.end
        return math.exp((target - self.a) / self.b) if self.b > 0 else math.inf


def fit_log_trend(points: Sequence[tuple[float, float]], from_fraction: float = 0.5) -> LogTrend:
    """Least-squares ``LogTrend`` through the (minutes, F1) ``points`` from ``from_fraction`` of the
    curve's last minute on (the early, steep part of a curve left out); needs two such points."""
    pts = sorted((m, f) for m, f in points if m > 0)
    if not pts:
        raise ValueError("a learning curve needs points at positive minutes")
    later = [(m, f) for m, f in pts if m >= from_fraction * pts[-1][0]]
    if len(later) < 2:
        raise ValueError(f"{len(later)} point(s) from {from_fraction:g} of the curve on: need 2 or more "
                         "(more snapshots, or a smaller from_fraction)")
    x = np.log([m for m, _ in later])
    y = np.array([f for _, f in later])
    b, a = np.polyfit(x, y, 1)
    return LogTrend(float(a), float(b), later[0][0], later[-1][0], len(later))


def crossing_minutes(first: LogTrend, second: LogTrend) -> float:
    """Minutes at which ``second``'s trend reaches ``first``'s (inf where it never does after both
    curves' ends; the later end where it is already level or above there)."""
    end = max(first.end, second.end)
    if second.at(end) >= first.at(end):
        return end
    if second.b <= first.b:
        return math.inf
    return math.exp((first.a - second.a) / (second.b - first.b))
