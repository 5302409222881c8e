"""Per-note confidence from several diffusion samples, and how well it is calibrated.

DiffRoll is a generative model: each x_T gives another plausible transcription. Drawing K of them
(:meth:`diffroll.transcription.pipeline.Pipeline.transcribe` with ``samples=K``) and voting note by note gives
every note a confidence:

    confidence(note) = (samples holding a note of the same pitch whose onset is within 50 ms of
                        the note's onset) / K

each sample's note counted for one note only (the matching rule of mir_eval's note F1).
:func:`cluster_notes` groups the K samples' notes into such candidates; :func:`consensus` keeps
the candidates found by a majority (more than K/2 samples). A candidate's onset is one of its
members' onsets (the centre that gathers the most samples), its offset and velocity the lower
medians of its members'. When the notes are read from the mean of the K samples' x̂0 instead
(``combine="mean"``, the bundled model's way), :func:`support` gives each of them the same share:
the samples holding a matching note / K.

Calibration: a confidence c is calibrated when the notes given c are true positives (matched to
the reference by mir_eval, onset within 50 ms) a fraction c of the time. :func:`reliability` bins
the notes by confidence; :func:`expected_calibration_error` is the count-weighted mean gap
|accuracy − confidence| over the bins (Guo et al., 2017). Vote shares are over-confident (a note
all K samples hold is right less often than always); :class:`Calibration` maps v of K votes to the
probability that the note is right, σ(slope · logit((v + ½) / (K + 1)) + intercept) (Platt scaling
of the smoothed share's log-odds, fit on the validation split by ``benchmarks/fit_confidence.py``,
stored in :attr:`diffroll.core.config.RollConfig.confidence_calibration`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import mir_eval
import numpy as np

from ..core.logistic import fit_logistic, sigmoid
from ..core.roll import ONSET_TOLERANCE, Note, note_array


@dataclass(frozen=True)
class Candidate:
    """One note of the vote: the note, and how many of the K samples hold it."""

    note: Note
    votes: int
    samples: int  # K

    @property
    def confidence(self) -> float:
        return self.votes / self.samples


def cluster_notes(samples: Sequence[Sequence[Note] | np.ndarray], tolerance: float = ONSET_TOLERANCE
                  ) -> list[Candidate]:
    """Every candidate note of K transcriptions (``samples``: lists of notes or
    :func:`note_array` arrays), sorted by onset, pitch.

    Per pitch, left to right: the earliest note not yet used is the left end; of the onsets
    from there to ``tolerance`` later, the centre that gathers notes of the most samples within
    ``tolerance`` (ties: the smaller summed distance, then the earlier centre) becomes a candidate,
    taking from each of those samples its note nearest the centre. Repeat until no note is left.
    """
    out = [c for pitch in _pitches(samples) for c in _vote(*_of_pitch(samples, pitch), len(samples), tolerance)]
    out.sort(key=lambda c: (c.note.onset, c.note.pitch))
    return out


def consensus(samples: Sequence[Sequence[Note] | np.ndarray], tolerance: float = ONSET_TOLERANCE,
              min_votes: int | None = None) -> tuple[list[Note], list[float]]:
    """The notes held by at least ``min_votes`` of the K samples (None: a majority, K // 2 + 1)
    and their confidences (votes / K), sorted by onset. With K = 1: the sample, confidence 1.
    A kept note that would still sound at the next kept onset of its key ends there (a re-strike).

    Memory: beyond the samples (best given as compact arrays) only the kept notes are held."""
    k = len(samples)
    need = k // 2 + 1 if min_votes is None else min_votes
    if not 1 <= need <= max(k, 1):
        raise ValueError(f"min_votes must be in 1..{k} (the number of samples), got {need}")
    samples = [note_array(s) for s in samples]
    kept = []
    for pitch in _pitches(samples):
        kept += _restrikes([c for c in _vote(*_of_pitch(samples, pitch), k, tolerance) if c.votes >= need])
    kept.sort(key=lambda c: (c.note.onset, c.note.pitch))
    return [c.note for c in kept], [c.confidence for c in kept]


def support(notes: Sequence[Note] | np.ndarray, samples: Sequence[Sequence[Note] | np.ndarray],
            tolerance: float = ONSET_TOLERANCE) -> list[float]:
    """Per note of ``notes`` (read some other way, e.g. from the mean of the K samples' x̂0), the
    share of the K ``samples`` holding a matching note: same pitch, onset within ``tolerance``,
    each sample's note matched to one note only (:func:`true_positives`, mir_eval's rule)."""
    if not samples:
        raise ValueError("support needs at least one sample")
    est = note_array(notes)
    held = sum(true_positives(sample, est, tolerance).astype(float) for sample in samples)
    return [float(h) for h in held / len(samples)]


def _restrikes(group: list[Candidate]) -> list[Candidate]:
    """One key's candidates with each offset cut at the next candidate's onset."""
    group = sorted(group, key=lambda c: c.note.onset)
    for i in range(len(group) - 1):
        nxt = group[i + 1].note.onset
        if group[i].note.offset > nxt:
            group[i] = Candidate(group[i].note._replace(offset=nxt), group[i].votes, group[i].samples)
    return group


def _pitches(samples) -> list[int]:
    if len(samples) == 0:
        raise ValueError("need at least one sample (a list of notes)")
    return sorted({int(p) for s in samples for p in np.unique(note_array(s)[:, 2])})


def _of_pitch(samples, pitch: int) -> tuple[np.ndarray, np.ndarray]:
    """The notes of one pitch of all samples, as rows sorted by (onset, sample), and their sample."""
    arrays = [note_array(s) for s in samples]
    rows = np.concatenate([a[a[:, 2] == pitch] for a in arrays])
    which = np.concatenate([np.full(int((a[:, 2] == pitch).sum()), s) for s, a in enumerate(arrays)])
    order = np.lexsort((which, rows[:, 0]))
    return rows[order], which[order]


def _vote(rows: np.ndarray, which: np.ndarray, k: int, tolerance: float) -> Iterator[Candidate]:
    """The candidates of one pitch's onset-sorted notes ``rows`` of samples ``which`` (see
    :func:`cluster_notes`), one at a time."""
    onsets = rows[:, 0]
    used = np.zeros(len(rows), dtype=bool)
    tol = tolerance + 1e-9  # onsets on a frame grid: exactly 50 ms apart still match
    first = 0
    while first < len(rows):
        if used[first]:
            first += 1
            continue
        best = None
        for c in range(first, int(np.searchsorted(onsets, onsets[first] + tol, side="right"))):
            if used[c]:
                continue
            members = _members(which, onsets, used, c, tol)
            key = (-len(members), sum(d for d, _ in members.values()), onsets[c])
            if best is None or key < best[0]:
                best = (key, c, members)
        _, c, members = best
        chosen = [i for _, i in members.values()]
        used[chosen] = True
        yield Candidate(_representative(rows[c], rows[chosen]), len(chosen), k)


def _members(which: np.ndarray, onsets: np.ndarray, used: np.ndarray, c: int,
             tol: float) -> dict[int, tuple[float, int]]:
    """Per sample, its unused note nearest to note ``c``'s onset within ``tol``: (distance, index)."""
    lo = int(np.searchsorted(onsets, onsets[c] - tol, side="left"))
    hi = int(np.searchsorted(onsets, onsets[c] + tol, side="right"))
    members: dict[int, tuple[float, int]] = {}
    for i in range(lo, hi):
        if used[i]:
            continue
        d, s = abs(float(onsets[i] - onsets[c])), int(which[i])
        if s not in members or (d, i != c) < (members[s][0], members[s][1] != c):
            members[s] = (d, i)
    return members


def _lower_median(values: np.ndarray) -> float:
    return float(np.sort(values)[(len(values) - 1) // 2])


def _representative(centre: np.ndarray, members: np.ndarray) -> Note:
    """The centre's onset and pitch; the lower medians of the members' offsets and velocities
    (the centre's offset if that median would not be after the onset). Rows of :func:`note_array`."""
    onset, offset = float(centre[0]), _lower_median(members[:, 1])
    if offset <= onset:
        offset = float(centre[1])
    return Note(onset, offset, int(centre[2]), int(_lower_median(members[:, 3])))


# --- calibration --------------------------------------------------------------------------------

def true_positives(ref: Sequence[Note] | np.ndarray, est: Sequence[Note] | np.ndarray,
                   tolerance: float = ONSET_TOLERANCE) -> np.ndarray:
    """(len(est),) bool: the estimated notes that mir_eval matches to a reference note (same pitch
    within 50 cents, pitches in Hz, onset within ``tolerance``, offsets ignored): note F1's rule.

    mir_eval compares every reference note with every estimated one (memory ∝ their product: 2 GB
    for two 30-minute transcriptions), so it is run on independent parts: one MIDI pitch at a time
    (the notes' pitches are whole keys), cut in time where no onset of either list lies within
    ``tolerance`` of the next (no pair across a cut can match), a few hundred notes a part. A
    maximum matching of each part is a maximum matching of the whole."""
    hit = np.zeros(len(est), dtype=bool)
    if not len(ref) or not len(est):
        return hit
    r, e = note_array(ref)[:, :3], note_array(est)[:, :3]  # onset, offset, pitch
    for pitch in np.unique(e[:, 2]):
        ri, ei = np.flatnonzero(r[:, 2] == pitch), np.flatnonzero(e[:, 2] == pitch)
        if not len(ri):
            continue
        for rj, ej in _independent_parts(r[ri, 0], e[ei, 0], tolerance):
            if not len(rj) or not len(ej):
                continue
            rp, ep = r[ri[rj]], e[ei[ej]]
            pairs = mir_eval.transcription.match_notes(rp[:, :2], mir_eval.util.midi_to_hz(rp[:, 2]), ep[:, :2],
                                                       mir_eval.util.midi_to_hz(ep[:, 2]), onset_tolerance=tolerance,
                                                       offset_ratio=None)
            hit[ei[ej[[j for _, j in pairs]]]] = True
    return hit


def _independent_parts(ref_onsets: np.ndarray, est_onsets: np.ndarray, tolerance: float, size: int = 256
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ref indices, est indices) of consecutive parts of two onset lists such that no onset of one
    part lies within ``tolerance`` (+1 ms, beyond mir_eval's rounding) of an onset of another;
    neighbouring parts are joined up to ``size`` notes."""
    onsets = np.concatenate([ref_onsets, est_onsets])
    is_est = np.arange(len(onsets)) >= len(ref_onsets)
    order = np.argsort(onsets, kind="stable")
    gaps = np.flatnonzero(np.diff(onsets[order]) > tolerance + 1e-3) + 1  # a part may start here
    start = 0
    for i, cut in enumerate(np.append(gaps, len(order))):
        if cut - start < size and i < len(gaps):
            continue
        part = np.sort(order[start:cut])  # each list in its own order, as mir_eval would see it
        yield part[~is_est[part]], part[is_est[part]] - len(ref_onsets)
        start = cut


def reliability(confidence: Sequence[float], correct: Sequence[bool], bins: int | Sequence[float] = 10) -> list[dict]:
    """Notes binned by confidence: per non-empty bin its range, count, mean confidence and the
    share of true positives (``accuracy``). ``bins``: a number of equal bins on [0, 1] or the
    edges. A confidence equal to an inner edge goes to the bin above it; 1.0 to the last bin."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence and correct differ in length: {conf.shape} vs {ok.shape}")
    if np.any(~np.isfinite(conf)) or np.any((conf < 0) | (conf > 1)):
        raise ValueError("confidences must be finite and in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1) if isinstance(bins, int) else np.asarray(bins, dtype=float)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.any():
            rows.append(dict(lo=float(edges[b]), hi=float(edges[b + 1]), count=int(sel.sum()),
                             confidence=float(conf[sel].mean()), accuracy=float(ok[sel].mean())))
    return rows


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool],
                               bins: int | Sequence[float] = 10) -> float:
    """Σ_bins (n_b / N)·|accuracy_b − confidence_b| over :func:`reliability`'s bins (nan: no notes)."""
    rows = reliability(confidence, correct, bins)
    total = sum(r["count"] for r in rows)
    if total == 0:
        return float("nan")
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def vote_bins(k: int, calibration: "Calibration | None" = None, lowest: int = 1) -> np.ndarray:
    """Bin edges with one bin per possible vote count ``lowest``..K of K samples (confidence v / K,
    or its ``calibration``: the edges then lie halfway between the calibrated values). ``lowest``:
    1 for candidates of a vote; 0 for notes read from the samples' mean, which no sample may hold."""
    if lowest not in (0, 1):
        raise ValueError(f"lowest is 0 or 1 (the fewest votes a note can have), got {lowest!r}")
    if calibration is None:
        return np.concatenate([[0.0], (np.arange(lowest, k) + 0.5) / k, [1.0]])
    values = calibration(np.arange(lowest, k + 1) / k, k)
    return np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [1.0]])


@dataclass(frozen=True)
class Calibration:
    """p(a note is right | v of the K samples hold it) = σ(slope · logit((v + ½) / (K + 1)) + intercept):
    Platt scaling of the log-odds of the vote share, smoothed so that K of K is not certain. The
    log-odds grow fastest at the top, as the chance of being right does (the bundled model on
    validation, K = 4: 22, 40, 57 and 91 % for 1–4 votes). ``slope`` > 0: more votes never mean
    less confidence."""

    slope: float
    intercept: float

    def __post_init__(self):
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept)) or self.slope <= 0:
            raise ValueError(f"confidence calibration needs a finite slope > 0 and a finite intercept, "
                             f"got {self.slope}, {self.intercept}")

    @classmethod
    def of(cls, values: Sequence[float] | None) -> "Calibration | None":
        """From :attr:`RollConfig.confidence_calibration` ([slope, intercept]; None: none)."""
        if values is None:
            return None
        if len(values) != 2:
            raise ValueError(f"confidence_calibration is [slope, intercept], got {values!r}")
        return cls(float(values[0]), float(values[1]))

    def __call__(self, share, samples: int):
        """The probability for vote shares ``share`` (votes / K) of K = ``samples``."""
        return sigmoid(self.slope * _log_odds(share, samples) + self.intercept)


def _log_odds(share, samples: int) -> np.ndarray:
    smoothed = (np.asarray(share, dtype=float) * samples + 0.5) / (samples + 1)
    return np.log(smoothed / (1 - smoothed))


def fit_calibration(share: Sequence[float], correct: Sequence[bool], samples: int) -> Calibration:
    """The :class:`Calibration` of least log loss on notes with vote shares ``share`` of K =
    ``samples`` that are right or not (``correct``): logistic regression on the log-odds
    (:func:`diffroll.core.logistic.fit_logistic`)."""
    v = np.asarray(share, dtype=float)
    y = np.asarray(correct, dtype=float)
    if v.shape != y.shape or len(v) == 0:
        raise ValueError(f"share and correct must be equally long and not empty: {v.shape} vs {y.shape}")
    if y.min() == y.max() or v.min() == v.max():
        raise ValueError("a calibration needs right and wrong notes with different vote shares")
    (slope,), intercept = fit_logistic(_log_odds(v, samples)[:, None], y)
    return Calibration(float(slope), intercept)


__all__ = ["Calibration", "Candidate", "array_notes", "cluster_notes", "consensus", "expected_calibration_error",
           "fit_calibration", "note_array", "reliability", "support", "true_positives", "vote_bins"]
