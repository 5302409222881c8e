"""Notes that a sustain pedal the model does not hear holds on: a guess from x̂0 and the harmony
(beyond the paper).

Under the sustain pedal a released key sounds on, fading, until the pedal comes up, and the
reference notes last that long (:func:`diffroll.core.roll.sustain_notes`, MAESTRO's convention). x̂0's
frame rows fall to nothing long before: on validation 89 % of the notes over 2 s end early, and
reading the same transcriptions with the true pedal would lift note-with-offset F1 by 9 points
(README, ``benchmarks/pedal_diagnosis.py``). Without a pedal channel the model does not say where
the pedal is. Legato pedalling — the way pianists pedal, and the way :mod:`diffroll.corpus.pianist`
pedals the corpus — lifts the pedal just after each harmony change. So, after decoding:

1. the harmony changes c_1 < c_2 < … of the decoded notes (:func:`diffroll.core.harmony.harmony_changes`);
2. a note that ends in [c_k + LIFT + PRESS, c_{k+1} + LIFT) may have been held by a pedal lifted
   at c_{k+1} + LIFT: that is its *candidate* offset (LIFT, PRESS: the middles of the pedalling
   model's release and re-press delays);
3. a logistic model (:class:`HeldNoteModel`) on :data:`FEATURES` of the note, its harmony segment
   and the segments around it gives the probability that it was; above the model's threshold the
   note takes its candidate offset, unless its key is struck again before (the re-strike rule).

The features come from the decoded notes and two tracks of x̂0's frame rows (:func:`frame_tracks`),
and each note's frame values (:func:`note_shapes`), so whole-roll and streamed decoding
(:class:`diffroll.transcription.decoding.NoteStream`) give the same notes. The weights are fit on transcriptions
of training pieces (:func:`fit_held_note_model`, labels from :func:`candidate_labels`) and the
threshold is chosen on the validation split, by ``benchmarks/fit_held_notes.py``; they are saved
in the checkpoint (:attr:`diffroll.core.config.RollConfig.held_notes`). Where the model has a pedal
channel its pedal is used instead.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np

from ..core.config import LOWEST_MIDI
from ..core.logistic import fit_logistic, sigmoid
from ..core.harmony import harmony_changes
from ..core.roll import Note, sustain_notes

LIFT = 0.09  # s after a harmony change that the pedal comes up (pianist.PedalSettings.release_delay: 30–150 ms)
PRESS = 0.125  # s after the lift that it goes down again (repress_delay: 50–200 ms)
SOUNDING = 0.05  # x̂0 frame value above which a key counts as sounding in the polyphony track
LAST_FRAMES = 3  # a note's "last" value: its mean frame value over its last frames
NEIGHBOURS = 3  # segments on each side averaged into the neighbourhood features
ONSET_SLACK = 0.02  # s: a note belongs to the segment its onset falls in, this much early counted in
RING_SLACK = 0.03  # s: a note "rings" into the next segment when it ends this close to its start or later

FEATURES = ("log length", "log extension", "log extension / length", "last", "peak", "last / peak",
            "log fade", "fade mean", "polyphony while extended", "segment polyphony", "segment late mass",
            "near: log notes", "near: ring", "near: fill", "near: polyphony", "near: late mass")


class Tracks(NamedTuple):
    """Per frame of x̂0: ``polyphony`` (keys whose frame value is above :data:`SOUNDING`) and
    ``mass`` (the sum of the frame rows)."""

    polyphony: np.ndarray
    mass: np.ndarray


def frame_tracks(frame_rows: np.ndarray) -> Tracks:
    """:class:`Tracks` of x̂0's 88 frame rows (88, frames)."""
    rows = np.asarray(frame_rows, dtype=np.float32)
    return Tracks((rows > SOUNDING).sum(axis=0).astype(np.float32), rows.sum(axis=0, dtype=np.float32))


def join_tracks(blocks: Sequence[Tracks]) -> Tracks:
    """The :class:`Tracks` of consecutive blocks, joined."""
    return Tracks(*(np.concatenate([getattr(b, name) for b in blocks]) if blocks else np.zeros(0, dtype=np.float32)
                    for name in Tracks._fields))


def note_shapes(frame_rows: np.ndarray, notes: np.ndarray, fps: float, quiet: float = SOUNDING) -> np.ndarray:
    """(n, 4) per note (rows of :func:`diffroll.transcription.confidence.note_array`, times relative to the
    rows' first frame): its mean frame value over its last :data:`LAST_FRAMES` frames, its peak,
    and its fade after the offset — log(1 + frames) that its key's frame value stays above
    ``quiet`` (up to the key's next note) and their mean value. Decoding passes
    :attr:`~diffroll.transcription.settings.DecodeSettings.silent_below`, so a fade never reaches past a frame
    where a streamed key is decoded up to (:class:`~diffroll.transcription.decoding.NoteStream`)."""
    notes = np.asarray(notes).reshape(-1, 4)
    out = np.zeros((len(notes), 4), dtype=np.float32)
    frames = frame_rows.shape[1]
    starts = np.round(notes[:, 0] * fps).astype(int)
    next_start = np.full(len(notes), frames)
    for pitch in np.unique(notes[:, 2]):
        mine = np.flatnonzero(notes[:, 2] == pitch)
        mine = mine[np.argsort(starts[mine], kind="stable")]
        next_start[mine[:-1]] = starts[mine[1:]]
    for i, (onset, offset, pitch, _) in enumerate(notes):
        row = frame_rows[int(pitch) - LOWEST_MIDI]
        a, b = starts[i], int(round(offset * fps))
        values = row[a:max(b, a + 1)]
        after = row[b:max(b, min(next_start[i], frames))]
        stop = np.flatnonzero(after <= quiet)
        fade = after[:stop[0] if len(stop) else len(after)]
        out[i] = values[-LAST_FRAMES:].mean(), values.max(), np.log1p(len(fade)), fade.mean() if len(fade) else 0.0
    return out


@dataclass(frozen=True)
class HeldNoteModel:
    """p(held) = σ(bias + weights · [z, z²]), z = (features − mean) / scale; a note is held when
    p > threshold. Stored as a dict in :attr:`diffroll.core.config.RollConfig.held_notes`."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def __post_init__(self):
        n = len(FEATURES)
        if len(self.mean) != n or len(self.scale) != n or len(self.weights) != 2 * n:
            raise ValueError(f"held_notes: mean and scale need {n} values and weights {2 * n} "
                             f"(features {FEATURES}); got {len(self.mean)}, {len(self.scale)}, {len(self.weights)}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"held_notes threshold must be strictly between 0 and 1, got {self.threshold}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeldNoteModel":
        return cls(tuple(map(float, d["mean"])), tuple(map(float, d["scale"])), tuple(map(float, d["weights"])),
                   float(d["bias"]), float(d["threshold"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain floats and lists (a checkpoint's config is loaded with ``weights_only``)."""
        return {k: [float(x) for x in v] if isinstance(v, tuple) else float(v) for k, v in asdict(self).items()}

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return sigmoid(self.bias + np.concatenate([z, z * z], axis=1) @ np.asarray(self.weights))


class _Note:
    """What :func:`diffroll.core.harmony.harmony_changes` reads of a note (pretty_midi's names)."""

    __slots__ = ("start", "end", "pitch")

    def __init__(self, start: float, end: float, pitch: int):
        self.start, self.end, self.pitch = start, end, pitch


def _segment_features(arr: np.ndarray, bounds: np.ndarray, tracks: Tracks, fps: float) -> np.ndarray:
    """(segments, 5): log notes, ring, fill, polyphony, late mass of each harmony segment."""
    onsets, offsets = arr[:, 0], arr[:, 1]
    out = np.zeros((len(bounds) - 1, 5))
    frames = len(tracks.polyphony)
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        fa, fb = min(int(a * fps), frames - 1), min(max(int(b * fps), int(a * fps) + 1), frames)
        poly = tracks.polyphony[fa:fb].mean() if fb > fa else 0.0
        late = tracks.mass[fa + (fb - fa) // 2:fb].mean() if fb > fa else 0.0
        mine = (onsets >= a - ONSET_SLACK) & (onsets < b - ONSET_SLACK)
        if not mine.any():
            out[k] = 0.0, 0.0, 0.0, poly, late
            continue
        ring = (offsets[mine] >= b - RING_SLACK).mean()
        fill = np.clip((offsets[mine] - onsets[mine]) / np.maximum(b - onsets[mine], 1e-3), 0, 2).mean()
        out[k] = np.log(mine.sum()), ring, fill, poly, late
    return out


def held_note_features(arr: np.ndarray, shapes: np.ndarray, tracks: Tracks, fps: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For sorted notes ``arr`` (note_array rows) with their :func:`note_shapes`: (features
    (n, len(FEATURES)), candidate offsets (n,), NaN for a note that has none)."""
    n = len(arr)
    features, candidate = np.zeros((n, len(FEATURES))), np.full(n, np.nan)
    if n == 0:
        return features, candidate
    changes = np.asarray(harmony_changes([_Note(a, b, int(p)) for a, b, p, _ in arr]))
    end = max(len(tracks.polyphony) / fps, float(arr[:, 1].max()))
    bounds = np.append(changes, end)
    seg = _segment_features(arr, bounds, tracks, fps)
    cum = np.vstack([np.zeros(seg.shape[1]), np.cumsum(seg, axis=0)])
    for i, (onset, offset, _, _) in enumerate(arr):
        k = int(np.searchsorted(bounds[1:] + LIFT, offset, side="right"))  # the span ending after this offset
        if k >= len(seg) or offset < bounds[k] + LIFT + PRESS:
            continue
        target = min(bounds[k + 1] + LIFT, end)
        if target <= offset:
            continue
        length, extension = offset - onset, target - offset
        last, peak, fade, fade_mean = shapes[i]
        fa = int(round(offset * fps))
        fb = max(int(round(target * fps)), fa + 1)
        poly = tracks.polyphony[fa:fb].mean() if fa < len(tracks.polyphony) else 0.0
        lo, hi = max(0, k - NEIGHBOURS), min(len(seg), k + NEIGHBOURS + 1)
        near = (cum[hi] - cum[lo]) / (hi - lo)
        features[i] = (np.log(length), np.log(extension), np.log(extension / length), last, peak,
                       last / (peak + 1e-3), fade, fade_mean, poly, seg[k, 3], seg[k, 4], *near)
        candidate[i] = target
    return features, candidate


def hold_notes(arr: np.ndarray, shapes: np.ndarray, tracks: Tracks, fps: float, model: HeldNoteModel) -> list[Note]:
    """The notes (note_array rows, any order, with their :func:`note_shapes`) with those the model
    says a pedal held lasting to their candidate offsets; sorted, re-strikes applied."""
    arr = np.asarray(arr).reshape(-1, 4)
    shapes = np.asarray(shapes).reshape(len(arr), 4)
    order = np.lexsort(arr.T[::-1])
    arr, shapes = arr[order], shapes[order]
    features, candidate = held_note_features(arr, shapes, tracks, fps)
    has = ~np.isnan(candidate)
    held = np.zeros(len(arr), dtype=bool)
    if has.any():
        held[has] = model.probability(features[has]) > model.threshold
    offsets = np.where(held, candidate, arr[:, 1])
    notes = [Note(float(a), float(b), int(p), int(v)) for (a, _, p, v), b in zip(arr, offsets)]
    return sustain_notes(notes, [], restrike=True)


# --- fitting (benchmarks/fit_held_notes.py) ---------------------------------------------------------

def candidate_labels(ref: Sequence[Note], arr: np.ndarray, candidate: np.ndarray, onset_tolerance: float = 0.05,
                     offset_ratio: float = 0.2, offset_min_tolerance: float = 0.05) -> np.ndarray:
    """Per note: 1 when its candidate offset is right (mir_eval's rule: within max(50 ms, 20 % of
    the reference note's length) of the reference note of the same key whose onset is nearest,
    within ``onset_tolerance``) and its own offset is not, 0 for the reverse, -1 otherwise (no
    candidate, no reference note, both or neither right)."""
    labels = np.full(len(arr), -1)
    by_key: dict[int, np.ndarray] = {}
    for r in ref:
        by_key.setdefault(int(r[2]), []).append((r[0], r[1]))
    by_key = {k: np.asarray(v) for k, v in by_key.items()}
    for i, (onset, offset, pitch, _) in enumerate(arr):
        rows = by_key.get(int(pitch))
        if np.isnan(candidate[i]) or rows is None:
            continue
        gap = np.abs(rows[:, 0] - onset)
        j = int(gap.argmin())
        if gap[j] > onset_tolerance:
            continue
        ref_on, ref_off = rows[j]
        tolerance = max(offset_min_tolerance, offset_ratio * (ref_off - ref_on))
        now, then = abs(offset - ref_off) <= tolerance, abs(candidate[i] - ref_off) <= tolerance
        labels[i] = 1 if then and not now else 0 if now and not then else -1
    return labels


def fit_held_note_model(features: np.ndarray, labels: np.ndarray, threshold: float = 0.5,
                        l2: float = 1e-3) -> HeldNoteModel:
    """Logistic regression (:func:`diffroll.core.logistic.fit_logistic`, L2 penalty ``l2``) of labels 1
    against 0 on [z, z²]."""
    keep = labels >= 0
    x, y = np.asarray(features, dtype=np.float64)[keep], labels[keep] == 1
    if len(np.unique(y)) < 2:
        raise ValueError(f"held-note labels need both classes; got {int(y.sum())} held of {len(y)}")
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    weights, bias = fit_logistic(np.concatenate([z, z * z], axis=1), y, l2=l2)
    return HeldNoteModel.from_dict(dict(mean=mean, scale=scale, weights=weights, bias=bias, threshold=threshold))


__all__ = ["FEATURES", "HeldNoteModel", "Tracks", "candidate_labels", "fit_held_note_model", "frame_tracks",
           "held_note_features", "hold_notes", "join_tracks", "note_shapes"]
