"""Metrics of §4 via mir_eval: note F1 (onset within 50 ms), note-with-offset F1, frame F1, and
note-with-offset-and-velocity F1 (mir_eval.transcription_velocity, Hawthorne et al. 2018).

Pitches are handed to mir_eval in Hz: its pitch tolerance is 50 cents, so MIDI numbers passed as
if they were Hz would let neighbouring keys match. Score whole pieces, not random crops.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import mir_eval
import numpy as np

from ..core.config import LOWEST_MIDI
from ..core.roll import N_KEYS, ONSET_TOLERANCE, Note



def note_arrays(notes: list[Note]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals (n, 2) in seconds, pitches in Hz, velocities (MIDI; 80 where a note has none)."""
    if not notes:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    arr = np.asarray([tuple(Note(*n)) for n in notes], dtype=float)
    return arr[:, :2], mir_eval.util.midi_to_hz(arr[:, 2]), arr[:, 3]


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


NOTE_KEYS = ("precision", "recall", "f1", "precision_offset", "recall_offset", "f1_offset",
             "precision_velocity", "recall_velocity", "f1_velocity")


def note_scores(ref: list[Note], est: list[Note], onset_tolerance: float = ONSET_TOLERANCE) -> dict[str, float]:
    """Note precision/recall/F1 (onset only), with offsets (mir_eval defaults: 20 % or 50 ms), and
    with offsets and velocities (``*_velocity``: mir_eval.transcription_velocity, velocities
    rescaled globally, tolerance 0.1). Notes without a velocity count as 80.

    Both lists empty counts as perfect; exactly one empty as zero.
    """
    if not ref and not est:
        return dict.fromkeys(NOTE_KEYS, 1.0)
    if not ref or not est:
        return dict.fromkeys(NOTE_KEYS, 0.0)
    ref_iv, ref_hz, ref_vel = note_arrays(ref)
    est_iv, est_hz, est_vel = note_arrays(est)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance, offset_ratio=None)
    po, ro, fo, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance)
    pv, rv, fv, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
        ref_iv, ref_hz, ref_vel, est_iv, est_hz, est_vel, onset_tolerance=onset_tolerance)
    return dict(precision=p, recall=r, f1=f, precision_offset=po, recall_offset=ro, f1_offset=fo,
                precision_velocity=pv, recall_velocity=rv, f1_velocity=fv)


def offset_errors(ref: list[Note], est: list[Note], onset_tolerance: float = ONSET_TOLERANCE) -> np.ndarray:
    """For every reference note that an estimated note matches on onset and pitch (mir_eval's
    matching, offsets ignored): (reference duration, estimated offset - reference offset, the
    offset tolerance of note-with-offset F1 = max(50 ms, 20 % of the duration)), in seconds, shape
    (n, 3). An error below minus the tolerance is a note that ends too early."""
    if not ref or not est:
        return np.zeros((0, 3))
    (ref_iv, ref_hz, _), (est_iv, est_hz, _) = note_arrays(ref), note_arrays(est)
    pairs = mir_eval.transcription.match_notes(ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance,
                                               offset_ratio=None)
    if not pairs:
        return np.zeros((0, 3))
    i, j = np.asarray(pairs).T
    duration = ref_iv[i, 1] - ref_iv[i, 0]
    return np.stack([duration, est_iv[j, 1] - ref_iv[i, 1], np.maximum(0.05, 0.2 * duration)], axis=1)


def split_notes(ref: list[Note], est: list[Note], onset_tolerance: float = ONSET_TOLERANCE) -> int:
    """Estimated notes that split a held reference note: their onset lies inside a reference note
    of the same pitch, more than ``onset_tolerance`` after its onset and before its offset, and no
    reference onset of that pitch is within ``onset_tolerance`` (a spurious re-strike: the error a
    frame-only roll makes when a decaying note dips below the threshold)."""
    by_pitch: dict[int, list[Note]] = {}
    for n in ref:
        by_pitch.setdefault(int(n[2]), []).append(Note(*n))
    count = 0
    for n in est:
        notes = by_pitch.get(int(n[2]), [])
        if any(abs(r.onset - n[0]) <= onset_tolerance for r in notes):
            continue
        if any(r.onset + onset_tolerance < n[0] < r.offset for r in notes):
            count += 1
    return count


def restrike_notes(ref: list[Note], gap: float = 0.03) -> list[int]:
    """Indices of the reference notes that strike a key again while it still sounds: a note of
    the same pitch began earlier and lasts until at least ``gap`` seconds before this onset
    (sustain-extended references end a held note where its key is struck again)."""
    last_end: dict[int, float] = {}
    out = []
    for i in sorted(range(len(ref)), key=lambda k: (ref[k][0], ref[k][2])):
        n = Note(*ref[i])
        if n.pitch in last_end and last_end[n.pitch] >= n.onset - gap:
            out.append(i)
        last_end[n.pitch] = max(last_end.get(n.pitch, -np.inf), n.offset)
    return out


def missed_restrikes(ref: list[Note], est: list[Note], onset_tolerance: float = ONSET_TOLERANCE) -> int:
    """Re-strikes of the reference (:func:`restrike_notes`) that no estimated note matches on
    onset and pitch (mir_eval's matching): the misses of a transcriber that cannot hear a key
    struck again under the pedal. The counterpart of :func:`split_notes`."""
    restrikes = restrike_notes(ref)
    if not restrikes or not est:
        return len(restrikes)
    (ref_iv, ref_hz, _), (est_iv, est_hz, _) = note_arrays(ref), note_arrays(est)
    matched = {i for i, _ in mir_eval.transcription.match_notes(ref_iv, ref_hz, est_iv, est_hz,
                                                                onset_tolerance=onset_tolerance, offset_ratio=None)}
    return sum(i not in matched for i in restrikes)


def split_reference_notes(ref: list[Note], est: list[Note], min_seconds: float = 0.5,
                          onset_tolerance: float = ONSET_TOLERANCE) -> list[Note]:
    """The reference notes of at least ``min_seconds`` that ``est`` splits (see :func:`split_notes`)."""
    out = []
    for r in (Note(*n) for n in ref):
        if r.offset - r.onset < min_seconds:
            continue
        if split_notes([r], [n for n in est if int(n[2]) == r.pitch], onset_tolerance):
            out.append(r)
    return out


def _roll_to_freqs(roll: np.ndarray) -> list[np.ndarray]:
    return [mir_eval.util.midi_to_hz(np.flatnonzero(col) + LOWEST_MIDI) for col in roll.T]


def frame_scores(ref_roll: np.ndarray, est_roll: np.ndarray, fps: float = 31.25,
                 threshold: float = 0.5) -> dict[str, float]:
    """Frame precision/recall/F1 with mir_eval.multipitch on binarised rolls (the frame channel:
    the first 88 rows of a multi-channel roll)."""
    ref = np.asarray(ref_roll)[:N_KEYS] > threshold
    est = np.asarray(est_roll)[:N_KEYS] > threshold
    n = max(ref.shape[1], est.shape[1])
    ref = np.pad(ref, ((0, 0), (0, n - ref.shape[1])))
    est = np.pad(est, ((0, 0), (0, n - est.shape[1])))
    if not ref.any() and not est.any():
        return dict(frame_precision=1.0, frame_recall=1.0, frame_f1=1.0)
    times = np.arange(n) / fps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty frames, which are legitimate here
        m = mir_eval.multipitch.evaluate(times, _roll_to_freqs(ref), times, _roll_to_freqs(est))
    return dict(frame_precision=m["Precision"], frame_recall=m["Recall"],
                frame_f1=_f1(m["Precision"], m["Recall"]))


SCORE_KEYS = ("precision", "recall", "f1", "f1_offset", "f1_velocity", "frame_f1", "split_notes", "missed_restrikes",
              "restrikes")


def mean_scores(rows: list[dict], by: Sequence[str] = ("group",), keys: Sequence[str] = SCORE_KEYS) -> list[dict]:
    """Mean of each score over the rows of each group (``by``: the columns that make a group), with
    the group's pieces, and its real-time factor (total wall time over total audio time) when the
    rows have timings. One row per group, in the order groups first appear."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for g, rs in groups.items():
        row = {**dict(zip(by, g)), **{k: float(np.mean([r[k] for r in rs])) for k in keys if k in rs[0]},
               "pieces": len(rs)}
        if "wall_seconds" in rs[0]:
            row["rtf"] = sum(r["wall_seconds"] for r in rs) / max(sum(r["seconds"] for r in rs), 1e-9)
        out.append(row)
    return out


def summarise(rows: list[dict], by: str = "group") -> dict[str, dict[str, float]]:
    """:func:`mean_scores` per value of ``by`` and over all rows (``all``), keyed by group."""
    out = {row[by]: row for row in mean_scores(rows, by=(by,))}
    out["all"] = mean_scores([{**r, by: "all"} for r in rows], by=(by,))[0] if rows else {}
    return out
