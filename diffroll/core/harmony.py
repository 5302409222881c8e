"""Harmony read from notes: the onsets where the chord changes (a chord-template segmentation),
for scores without chord symbols. The corpus' pedalling (:mod:`diffroll.corpus.pianist`) and the
guess of pedal-held notes in a transcription (:mod:`diffroll.transcription.held_notes`) use it.

Notes are anything with ``start``, ``end`` and ``pitch`` (pretty_midi's names).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pretty_midi


def onset_clusters(notes: Sequence[pretty_midi.Note], tolerance: float = 0.03) -> list[float]:
    """Onset times, notes struck within ``tolerance`` of a cluster's first onset counted as one."""
    clusters: list[float] = []
    for t in sorted(n.start for n in notes):
        if not clusters or t - clusters[-1] > tolerance:
            clusters.append(t)
    return clusters


def _chord_templates() -> np.ndarray:
    """12 x 48 indicator matrix of the major, minor, dominant-seventh and diminished chords."""
    shapes = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 6))
    return np.array([[float((pc - root) % 12 in shape) for pc in range(12)]
                     for shape in shapes for root in range(12)]).T


_TEMPLATES = _chord_templates()


def harmony_changes(notes: Sequence[pretty_midi.Note], penalty: float = 0.15, longest: float = 6.0) -> list[float]:
    """Onsets where the harmony changes, for scores without chord symbols.

    The piece is cut at onset clusters (notes within 30 ms) into segments of at most ``longest``
    seconds, each scored by how well one chord (major, minor, dominant seventh or diminished)
    explains its sounding notes: duration x (2 x fit - 1), where fit is the share of its
    duration-weighted pitch classes (bass notes up to double weight) on the chord. Dynamic
    programming picks the cuts that maximise the total score less ``penalty`` per segment, so a
    figuration over one chord stays one segment and a new chord starts a new one. Returns the
    segment starts; the first onset always counts.
    """
    onsets = np.array(onset_clusters(notes))
    if len(onsets) < 2:
        return [float(t) for t in onsets]
    bounds = np.append(onsets, max(n.end for n in notes))
    starts, ends = np.array([n.start for n in notes]), np.array([n.end for n in notes])
    pitches = np.array([n.pitch for n in notes])
    weight = 1 + np.clip((60 - pitches) / 24, 0, 1)  # the bass defines the harmony
    profiles = np.zeros((len(onsets) + 1, 12))  # cumulative pitch-class weight up to each onset
    for k in range(len(onsets)):
        overlap = np.clip(np.minimum(ends, bounds[k + 1]) - np.maximum(starts, bounds[k]), 0, None)
        profiles[k + 1] = profiles[k] + np.bincount(pitches % 12, weights=overlap * weight, minlength=12)
    best, back = np.zeros(len(bounds)), np.zeros(len(bounds), dtype=int)
    for j in range(1, len(bounds)):
        i = np.arange(min(int(np.searchsorted(bounds, bounds[j] - longest)), j - 1), j)
        segment = profiles[j] - profiles[i]
        total = segment.sum(axis=1)
        fit = np.where(total > 0, (segment @ _TEMPLATES).max(axis=1) / np.maximum(total, 1e-9), 1.0)
        score = best[i] + (bounds[j] - bounds[i]) * (2 * fit - 1) - penalty
        best[j], back[j] = score.max(), i[int(score.argmax())]
    cuts, j = [], len(onsets)
    while j > 0:
        j = back[j]
        cuts.append(float(onsets[j]))
    return cuts[::-1]
