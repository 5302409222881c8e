"""Logistic regression by Newton's method, for the small models fit on the corpus after training:
the guess of pedal-held notes (:mod:`diffroll.transcription.held_notes`) and the confidence calibration
(:mod:`diffroll.transcription.confidence`)."""
from __future__ import annotations

import numpy as np


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.0, iterations: int = 100) -> tuple[np.ndarray, float]:
    """Weights w and bias b of p(y = 1 | x) = σ(x · w + b) that minimise the mean log loss over the
    rows of ``x`` (n, d) plus ``l2`` · |w|² (the bias is not penalised): Newton's method, which
    converges in a few steps on these convex problems of a few dozen parameters."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"expected x (n, d) and y (n,) with n > 0, got {x.shape} and {y.shape}")
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = 2 * l2 * np.diag(np.append(np.ones(x.shape[1]), 0.0))
    theta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = sigmoid(design @ theta)
        gradient = design.T @ (p - y) / len(y) + penalty @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) / len(y) + penalty + 1e-12 * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:-1], float(theta[-1])
