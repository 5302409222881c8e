"""Scores -> piano performances: merging parts, transposition, tempo, dynamics, excerpts, and
generated pieces that cover all 88 keys.

The offline corpus (:mod:`diffroll.corpus.offline`) turns each score of the music21 corpus into one or
more MIDI "performances" that are then rendered to audio. Everything here works on
``pretty_midi`` objects and a numpy ``Generator``, so the same seed gives the same MIDI.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

from ..core.config import LOWEST_MIDI, N_KEYS

HIGHEST_MIDI = LOWEST_MIDI + N_KEYS - 1  # C8
MIN_NOTE_SECONDS = 0.03
MAX_NOTE_SECONDS = 6.0  # a rendered piano note has decayed by then; a longer roll entry would be silent


def piano_notes(midi: pretty_midi.PrettyMIDI) -> list[pretty_midi.Note]:
    """All non-drum notes merged onto one piano, cleaned so that audio and roll agree.

    Pitches outside A0–C8 are moved by octaves into range, doubled notes (same pitch and
    onset, e.g. two voices in unison) are kept once, a note still sounding when its key is
    struck again ends at that onset, and no note lasts longer than :data:`MAX_NOTE_SECONDS`
    (music21 ties and chord symbols produce notes of 30 s and more).
    """
    notes = []
    for inst in midi.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            pitch = n.pitch
            while pitch < LOWEST_MIDI:
                pitch += 12
            while pitch > HIGHEST_MIDI:
                pitch -= 12
            if n.end - n.start >= MIN_NOTE_SECONDS:
                notes.append(pretty_midi.Note(n.velocity, pitch, n.start, min(n.end, n.start + MAX_NOTE_SECONDS)))
    notes.sort(key=lambda n: (n.pitch, n.start, -n.end))
    kept: list[pretty_midi.Note] = []
    for n in notes:
        prev = kept[-1] if kept and kept[-1].pitch == n.pitch else None
        if prev is not None and abs(prev.start - n.start) < 1e-6:
            continue  # unison doubling
        if prev is not None and prev.end > n.start:
            prev.end = n.start
        kept.append(n)
    kept = [n for n in kept if n.end - n.start >= MIN_NOTE_SECONDS / 2]
    kept.sort(key=lambda n: (n.start, n.pitch))
    return kept


def as_midi(notes: list[pretty_midi.Note], program: int = 0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=program, name="piano")
    piano.notes = notes
    pm.instruments.append(piano)
    return pm


@dataclass(frozen=True)
class Variation:
    """How one performance differs from the score."""

    transpose: int = 0  # semitones
    tempo: float = 1.0  # > 1 is faster
    start: float = 0.0  # excerpt start, in seconds of the (tempo-scaled) performance
    length: float | None = None  # excerpt length in seconds (None: to the end)


def draw_variation(notes: list[pretty_midi.Note], rng: np.random.Generator, augment: bool,
                   excerpt_s: float | None) -> Variation:
    """A random transposition (±6 semitones, notes kept within A0–C8), tempo factor (0.8–1.25)
    and excerpt start; ``augment=False`` keeps the score as written and starts at its beginning."""
    if not augment:
        return Variation(length=excerpt_s)
    lo, hi = min(n.pitch for n in notes), max(n.pitch for n in notes)
    shifts = [k for k in range(-6, 7) if k != 0 and lo + k >= LOWEST_MIDI and hi + k <= HIGHEST_MIDI]
    transpose = int(rng.choice(shifts)) if shifts else 0
    tempo = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    duration = max(n.end for n in notes) / tempo
    start = float(rng.uniform(0.0, duration - excerpt_s)) if excerpt_s and duration > excerpt_s else 0.0
    return Variation(transpose, tempo, start, excerpt_s)


def perform(notes: list[pretty_midi.Note], variation: Variation, rng: np.random.Generator,
            dynamics: bool = True) -> pretty_midi.PrettyMIDI:
    """Apply a :class:`Variation` (and, with ``dynamics``, a phrase-level loudness curve plus
    per-note jitter, since notated scores have flat velocities) -> a one-piano PrettyMIDI whose
    first note of the excerpt starts at time 0."""
    end = variation.start + variation.length if variation.length else float("inf")
    out = []
    for n in notes:
        on, off = n.start / variation.tempo, n.end / variation.tempo
        if on < variation.start or on >= end:
            continue
        out.append(pretty_midi.Note(n.velocity, n.pitch + variation.transpose,
                                    on - variation.start, min(off, end) - variation.start))
    if not out:
        return as_midi([])
    shift = min(n.start for n in out)
    for n in out:
        n.start, n.end = n.start - shift, n.end - shift
    if dynamics:
        _shape_velocities(out, rng)
    return as_midi([n for n in out if n.end - n.start >= MIN_NOTE_SECONDS / 2])


def _shape_velocities(notes: list[pretty_midi.Note], rng: np.random.Generator) -> None:
    """Velocity = a slow random loudness curve (phrases of 4–12 s) + N(0, 6) per note, in 12..124."""
    level = rng.uniform(45, 100)
    swing = rng.uniform(10, 30)
    period = rng.uniform(4, 12)
    phase = rng.uniform(0, 2 * np.pi)
    for n in notes:
        v = level + swing * np.sin(2 * np.pi * n.start / period + phase) + rng.normal(0, 6)
        n.velocity = int(np.clip(round(v), 12, 124))


# --- generated pieces: the whole keyboard, fast repetitions, wide dynamics -----------------

def generated_piece(rng: np.random.Generator, seconds: float = 60.0) -> pretty_midi.PrettyMIDI:
    """A synthetic study that covers all 88 keys: one chromatic sweep over the whole keyboard,
    then random sections (chords, scales, arpeggios, repeated notes, two-voice lines) in random
    registers, each at its own dynamic level (velocity 15–127), until ``seconds`` are filled.

    Chorales and most scores stay within about four octaves; these pieces teach the extreme
    registers and the note patterns that scores rarely contain.
    """
    notes: list[pretty_midi.Note] = []
    t = _sweep(notes, 0.0, rng)
    sections = (_chords, _scale, _arpeggio, _repeated, _two_voices)
    while t < seconds:
        section = sections[int(rng.integers(len(sections)))]
        t = section(notes, t, rng) + float(rng.uniform(0.0, 0.4))
    return as_midi(piano_notes(as_midi([n for n in notes if n.start < seconds])))


def _add(notes, pitch, start, dur, vel):
    pitch = int(np.clip(pitch, LOWEST_MIDI, HIGHEST_MIDI))
    notes.append(pretty_midi.Note(int(np.clip(vel, 15, 127)), pitch, float(start), float(start + dur)))


def _dynamic(rng) -> float:
    return float(rng.uniform(15, 127))


def _sweep(notes, t, rng) -> float:
    step = rng.uniform(0.06, 0.12)  # 5.3–10.6 s for the 88 keys
    keys = range(LOWEST_MIDI, HIGHEST_MIDI + 1)
    keys = keys if rng.random() < 0.5 else reversed(keys)
    vel = _dynamic(rng)
    for k in keys:
        _add(notes, k, t, step * 1.5, vel + rng.normal(0, 8))
        t += step
    return t


def _register(rng, span: int) -> int:
    """A random lowest pitch such that ``span`` semitones above it stay on the keyboard."""
    return int(rng.integers(LOWEST_MIDI, max(LOWEST_MIDI + 1, HIGHEST_MIDI - span + 1)))


def _chords(notes, t, rng) -> float:
    vel = _dynamic(rng)
    for _ in range(int(rng.integers(3, 9))):
        span = int(rng.integers(4, 25))
        base = _register(rng, span)
        size = int(rng.integers(2, 7))
        pitches = base + rng.choice(span + 1, size=min(size, span + 1), replace=False)
        dur = float(rng.uniform(0.15, 1.5))
        for p in pitches:
            _add(notes, p, t, dur * rng.uniform(0.8, 1.0), vel + rng.normal(0, 8))
        t += dur * rng.uniform(0.7, 1.1)
    return t


def _scale(notes, t, rng) -> float:
    steps = np.array([2, 2, 1, 2, 2, 2, 1]) if rng.random() < 0.5 else np.array([2, 1, 2, 2, 1, 3, 1])
    length = int(rng.integers(8, 36))
    span = int(np.cumsum(np.resize(steps, length))[-1])
    pitch = _register(rng, span)
    step = rng.uniform(0.06, 0.2)
    vel, crescendo = _dynamic(rng), rng.uniform(-2, 2)
    up = rng.random() < 0.5
    pitches = pitch + np.concatenate([[0], np.cumsum(np.resize(steps, length - 1))])
    for i, p in enumerate(pitches if up else pitches[::-1]):
        _add(notes, p, t, step * 1.1, vel + crescendo * i)
        t += step
    return t


def _arpeggio(notes, t, rng) -> float:
    shape = np.array([0, 4, 7]) if rng.random() < 0.5 else np.array([0, 3, 7, 10])
    octaves = int(rng.integers(2, 5))
    pitches = (shape[None, :] + 12 * np.arange(octaves)[:, None]).ravel()
    base = _register(rng, int(pitches[-1]))
    step = rng.uniform(0.07, 0.2)
    vel = _dynamic(rng)
    for p in np.concatenate([pitches, pitches[-2::-1]]):
        _add(notes, base + p, t, step * rng.uniform(1.0, 3.0), vel + rng.normal(0, 6))
        t += step
    return t


def _repeated(notes, t, rng) -> float:
    pitches = _register(rng, 12) + rng.choice(13, size=int(rng.integers(1, 4)), replace=False)
    rate = rng.uniform(3, 12)  # strikes per second
    vel = _dynamic(rng)
    for _ in range(int(rng.integers(6, 24))):
        for p in pitches:
            _add(notes, p, t, 0.7 / rate, vel + rng.normal(0, 10))
        t += 1.0 / rate
    return t


def _two_voices(notes, t, rng) -> float:
    low, high = _register(rng, 30), None
    high = min(low + int(rng.integers(12, 31)), HIGHEST_MIDI)
    vel = _dynamic(rng)
    end = t + rng.uniform(3, 8)
    tl = th = t
    while min(tl, th) < end:
        if tl <= th:
            dur = float(rng.choice([0.25, 0.5, 1.0]))
            low = int(np.clip(low + rng.integers(-4, 5), LOWEST_MIDI, HIGHEST_MIDI - 12))
            _add(notes, low, tl, dur, vel - 10 + rng.normal(0, 6))
            tl += dur
        else:
            dur = float(rng.choice([0.125, 0.25, 0.5]))
            high = int(np.clip(high + rng.integers(-3, 4), LOWEST_MIDI + 12, HIGHEST_MIDI))
            _add(notes, high, th, dur * 0.95, vel + rng.normal(0, 6))
            th += dur
    return max(tl, th)


# --- noise-only stretches -----------------------------------------------------------------------

MIN_GAP_SECONDS = 1.0  # the shortest gap insert_gaps opens


def longest_silence(midi: pretty_midi.PrettyMIDI) -> float:
    """The longest stretch inside the piece (first onset to last offset) where no note sounds."""
    spans = sorted((n.start, n.end) for inst in midi.instruments if not inst.is_drum for n in inst.notes)
    longest, reach = 0.0, spans[0][1] if spans else 0.0
    for start, end in spans[1:]:
        longest = max(longest, start - reach)
        reach = max(reach, end)
    return longest

def insert_gaps(midi: pretty_midi.PrettyMIDI, rng: np.random.Generator, n_gaps: int = 1,
                seconds: tuple[float, float] = (MIN_GAP_SECONDS, 4.0)) -> pretty_midi.PrettyMIDI:
    """Open ``n_gaps`` silent stretches of ``seconds`` in a performance (in place, and returned).

    At each cut time every sounding note ends, the pedal comes up, and everything after moves
    later by the gap, so the roll there is empty while the rendered audio holds only release tails
    and whatever noise augmentation adds: the model learns that noise alone is not music.
    """
    inst = midi.instruments[0]
    end = max((n.end for n in inst.notes), default=0.0)
    if end <= 2.0:
        return midi
    for cut in sorted(rng.uniform(1.0, end - 1.0, size=n_gaps), reverse=True):
        gap = float(rng.uniform(*seconds))
        pedal_down = False
        for cc in sorted(inst.control_changes, key=lambda c: c.time):
            if cc.number == 64 and cc.time <= cut:
                pedal_down = cc.value >= 64
        for n in inst.notes:
            if n.start >= cut:
                n.start, n.end = n.start + gap, n.end + gap
            elif n.end > cut:
                n.end = cut
        for cc in inst.control_changes:
            if cc.time > cut:
                cc.time += gap
        if pedal_down:
            inst.control_changes.append(pretty_midi.ControlChange(64, 0, cut))
            inst.control_changes.append(pretty_midi.ControlChange(64, 127, cut + gap))
    inst.notes = [n for n in inst.notes if n.end - n.start >= MIN_NOTE_SECONDS / 2]
    inst.control_changes.sort(key=lambda c: c.time)
    return midi
