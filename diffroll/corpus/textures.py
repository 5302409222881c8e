"""The textures of pianistic pieces: chord progressions in a key, and two-hand textures written
over them in beats (performed by :mod:`diffroll.corpus.pianist`), one function each:

- ``_alberti``       melody over an Alberti bass (low–high–middle–high);
- ``_waltz``         melody over an oom-pah-pah bass in 3/4;
- ``_broken_bass``   melody over a wide broken-chord left hand (root, fifth, octave, tenth);
- ``_arpeggios``     broken chords over 2–4 octaves shared by both hands, up, down or both;
- ``_block_chords``  full chords in both hands (4–10 notes), often with the bass in octaves;
- ``_chorale``       a hymn spread for piano: voice-led open chords, the bass in the left hand;
- ``_octaves``       a line in parallel octaves in either hand, chords in the other;
- ``_runs``          fast diatonic or chromatic scales (up to ~14 notes/s) over held chords;
- ``_repeated``      repeated notes or chords over left-hand octaves;
- ``_trills``        trills on the melody's long notes over a left-hand tremolo;
- ``_rich_chords``   ten or more sounding notes: held bass octave, chords in both hands, melody.

Registers are drawn per section, so the left hand reaches down to A0 and the right hand up to C8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from ..core.config import LOWEST_MIDI
from .performance import HIGHEST_MIDI

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: a major dominant with a leading tone


# --- harmony --------------------------------------------------------------------------------

class _Chord(NamedTuple):
    beat: float  # onset, in beats from the section start
    beats: float
    tones: tuple[int, ...]  # pitch classes, root first: root, third, fifth[, seventh]


# Functional successors of each scale degree (0 = I ... 6 = vii°); repeats weight the choice.
_NEXT = {0: (3, 4, 5, 1, 2, 6), 1: (4, 4, 6), 2: (5, 3), 3: (4, 0, 1, 6), 4: (0, 0, 5), 5: (1, 3, 4), 6: (0,)}


_TONICISED = (1, 3, 4, 5)  # degrees that may be preceded by their own dominant seventh (V7/x)


def _triad(degree: int, scale: Sequence[int], seventh: bool = False) -> tuple[int, ...]:
    return tuple(scale[(degree + s) % 7] for s in ((0, 2, 4, 6) if seventh else (0, 2, 4)))


def _dominant_of(pc: int) -> tuple[int, ...]:
    root = (pc + 7) % 12
    return root, (root + 4) % 12, (root + 7) % 12, (root + 10) % 12


def _progression(n: int, minor: bool, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``n`` chords (pitch classes above the tonic): a walk from I through functional successors,
    with secondary dominants before ii, IV, V or vi one time in five, ending V7–I."""
    scale = MINOR if minor else MAJOR
    tonic, dominant = _triad(0, scale), _triad(4, scale, seventh=True)
    if n <= 2:
        return [dominant, tonic][-n:]
    chords, degree = [tonic], 0
    while len(chords) < n - 2:
        degree = int(rng.choice(_NEXT[degree]))
        if minor and degree == 2:
            degree = 5  # III is augmented in harmonic minor
        if degree in _TONICISED and len(chords) < n - 3 and rng.random() < 0.2:
            chords.append(_dominant_of(scale[degree]))
        chords.append(_triad(degree, scale, seventh=rng.random() < 0.2))
    return chords + [dominant, tonic]


def _fold(pitch: int) -> int:
    """Move a pitch by octaves onto the keyboard (A0–C8)."""
    while pitch < LOWEST_MIDI:
        pitch += 12
    while pitch > HIGHEST_MIDI:
        pitch -= 12
    return int(pitch)


def _at_or_above(pc: int, low: int) -> int:
    """The lowest pitch of pitch class ``pc`` at or above ``low``."""
    return low + (pc - low) % 12


def _tones(pcs: Sequence[int], low: int, high: int) -> list[int]:
    """All pitches in [low, high] whose pitch class is in ``pcs``, ascending."""
    return [p for p in range(low, high + 1) if p % 12 in pcs]


class _Ev(NamedTuple):
    """A note of a texture, in beats; ``held`` notes keep their length whatever the articulation."""

    pitch: int
    beat: float
    beats: float
    role: str  # "melody", "accomp" or "bass": sets its loudness
    held: bool = False


@dataclass(frozen=True)
class _Plan:
    key: int
    minor: bool
    meter: int  # beats per bar
    bpm: float
    chords: tuple[_Chord, ...]
    low: int  # bottom of the left hand's register
    top: int  # top of the right hand's register

    @property
    def beats(self) -> float:
        return self.chords[-1].beat + self.chords[-1].beats

    @property
    def scale(self) -> tuple[int, ...]:
        return tuple((self.key + s) % 12 for s in (MINOR if self.minor else MAJOR))

    def melody_range(self) -> tuple[int, int]:
        return self.top - 19, self.top


def _per_beat(plan: _Plan, rng, choices: Sequence[int], max_rate: float, min_rate: float = 0.0) -> int:
    """A random number of notes per beat from ``choices`` whose rate (notes/s at the section's
    tempo) lies in [min_rate, max_rate]; the fewest of ``choices`` when none does."""
    fit = [k for k in choices if min_rate <= k * plan.bpm / 60 <= max_rate]
    return int(rng.choice(fit)) if fit else min(choices)


_CELLS = ((1.0,), (0.5, 0.5), (1.5, 0.5), (2.0,), (0.75, 0.25), (0.5, 0.25, 0.25), (0.25,) * 4, (3.0,))


_MELODIC_STEPS = (-4, -3, -2, -1, 1, 2, 3, 4)


_STEP_WEIGHTS = (0.04, 0.04, 0.12, 0.3, 0.3, 0.12, 0.04, 0.04)


def _rhythm(beats: float, rng) -> list[float]:
    """Note lengths (in beats) that fill ``beats`` with common rhythmic cells."""
    lengths, left = [], beats
    while left > 1e-9:
        cells = [c for c in _CELLS if sum(c) <= left + 1e-9]
        if not cells:
            lengths.append(left)
            break
        cell = cells[int(rng.integers(len(cells)))]
        lengths.extend(cell)
        left -= sum(cell)
    return lengths


def _melody(plan: _Plan, rng, low: int, high: int, role: str = "melody") -> list[_Ev]:
    """A singing line in [low, high]: a chord tone at each harmony change, mostly steps of the
    scale in between, and one long note on the last chord."""
    steps = _tones(plan.scale, low, high)
    i = int(rng.integers(len(steps)))
    line = []
    for n, chord in enumerate(plan.chords):
        beat = chord.beat
        lengths = [chord.beats] if n == len(plan.chords) - 1 else _rhythm(chord.beats, rng)
        for k, length in enumerate(lengths):
            if k == 0:
                chord_tones = [j for j, p in enumerate(steps) if p % 12 in chord.tones] or [i]
                i = min(chord_tones, key=lambda j: abs(j - i))
            else:
                i += int(rng.choice(_MELODIC_STEPS, p=_STEP_WEIGHTS))
                i = abs(i) if i < 0 else min(i, 2 * (len(steps) - 1) - i)  # bounce off the edges
            line.append(_Ev(steps[i], beat, length, role))
            beat += length
    return line


def _figure(pitches: Sequence[int], chord: _Chord, per_beat: float, role: str, length: float = 1.0) -> list[_Ev]:
    """``pitches`` cycled through the chord's span, ``per_beat`` notes a beat, each ``length`` steps long."""
    step = 1.0 / per_beat
    return [_Ev(pitches[i % len(pitches)], chord.beat + i * step, step * length, role)
            for i in range(int(round(chord.beats * per_beat)))]


def _alberti(plan: _Plan, rng) -> list[_Ev]:
    """Melody over an Alberti bass: the left hand's close chord broken low–high–middle–high."""
    per_beat = _per_beat(plan, rng, (2, 4), max_rate=12)
    notes = _melody(plan, rng, *plan.melody_range())
    for chord in plan.chords:
        root = _at_or_above(chord.tones[0], plan.low + 10)
        third, fifth = _at_or_above(chord.tones[1], root), _at_or_above(chord.tones[2], root)
        notes += _figure((root, fifth, third, fifth), chord, per_beat, "accomp")
    return notes


def _waltz(plan: _Plan, rng) -> list[_Ev]:
    """Melody over an oom-pah-pah bass: root (fifth in alternate bars) on the downbeat, often in
    octaves, a short chord on beats two and three."""
    octave = rng.random() < 0.5
    notes = _melody(plan, rng, *plan.melody_range())
    for chord in plan.chords:
        for b in range(int(chord.beats)):
            beat = chord.beat + b
            if b % 3 == 0:
                bass = _at_or_above(chord.tones[0] if b % 6 == 0 else chord.tones[2], plan.low)
                notes += [_Ev(p, beat, 1.0, "bass") for p in ((bass, bass + 12) if octave else (bass,))]
            else:
                notes += [_Ev(p, beat, 0.6, "accomp") for p in _tones(chord.tones[:3], plan.low + 17, plan.low + 28)]
    return notes


def _broken_bass(plan: _Plan, rng) -> list[_Ev]:
    """Melody over a wide broken-chord left hand (root, fifth, octave, tenth, octave, fifth)."""
    per_beat = _per_beat(plan, rng, (2, 3, 4), max_rate=10)
    notes = _melody(plan, rng, *plan.melody_range())
    for chord in plan.chords:
        root = _at_or_above(chord.tones[0], plan.low)
        fifth, tenth = _at_or_above(chord.tones[2], root), _at_or_above(chord.tones[1], root + 12)
        notes += _figure((root, fifth, root + 12, tenth, root + 12, fifth), chord, per_beat, "accomp", length=2.0)
    return notes


def _arpeggios(plan: _Plan, rng) -> list[_Ev]:
    """Broken chords over 2–4 octaves shared by both hands, going up, down or up and down, with
    the top of each sweep brought out and sometimes a held bass note below."""
    octaves = int(rng.integers(2, 5))
    low = int(rng.integers(LOWEST_MIDI, HIGHEST_MIDI - 12 * octaves + 1))
    per_beat = _per_beat(plan, rng, (2, 3, 4, 6, 8), max_rate=14, min_rate=4)
    shape, held_bass = str(rng.choice(["up", "down", "updown"])), rng.random() < 0.5
    notes = []
    for chord in plan.chords:
        up = _tones(chord.tones, low, low + 12 * octaves)
        sweep = {"up": up, "down": up[::-1], "updown": up + up[-2:0:-1]}[shape]
        notes += [e._replace(role="melody" if e.pitch == up[-1] else "accomp", beats=1.5 / per_beat)
                  for e in _figure(sweep, chord, per_beat, "accomp")]
        bass = _at_or_above(chord.tones[0], max(LOWEST_MIDI, low - 12))
        if held_bass and bass < low:
            notes.append(_Ev(bass, chord.beat, chord.beats, "bass", held=True))
    return notes


def _block_chords(plan: _Plan, rng) -> list[_Ev]:
    """Full chords in both hands (4–10 notes): the left hand's root, often doubled at the octave,
    with inner tones; the right hand's chord under a voice-led top note; struck once per harmony,
    on every beat, or on every half beat at slow tempi."""
    bass_octave, lh_inner, rh_size = rng.random() < 0.6, int(rng.integers(0, 3)), int(rng.integers(3, 6))
    every = float(rng.choice([0.0, 1.0, 0.5 if plan.bpm < 90 else 1.0]))  # 0: once per harmony
    low, high = plan.melody_range()
    top = int(rng.integers(low, high + 1))
    notes = []
    for chord in plan.chords:
        root = _at_or_above(chord.tones[0], plan.low)
        left = [root] + (([root + 12]) if bass_octave else []) + _tones(chord.tones, root + 3, root + 11)[:lh_inner]
        top = min(_tones(chord.tones, low, high), key=lambda p: abs(p - top))
        right = _tones(chord.tones, top - 14, top)[-rh_size:]
        length = every or chord.beats
        for i in range(int(round(chord.beats / length))):
            beat = chord.beat + i * length
            notes += [_Ev(p, beat, length, "bass") for p in left]
            notes += [_Ev(p, beat, length, "melody" if p == top else "accomp") for p in right]
    return notes


def _chorale(plan: _Plan, rng) -> list[_Ev]:
    """A hymn spread for piano: one chord a beat (two at fast tempi), the bass (root, or the third
    on some beats) in the left hand, sometimes doubled an octave below, three voice-led upper
    voices in open position."""
    every = 2.0 if plan.bpm > 120 else 1.0
    doubled = rng.random() < 0.5
    homes = (plan.top - 8, plan.top - 15, plan.low + 24)  # soprano, alto, tenor
    voices = list(homes)
    notes = []
    for chord in plan.chords:
        for i in range(max(1, int(round(chord.beats / every)))):
            beat = chord.beat + i * every
            bass = _at_or_above(chord.tones[1] if rng.random() < 0.2 else chord.tones[0], plan.low + 5)
            used: list[int] = []
            for v, home in enumerate(homes):
                pcs = [pc for pc in chord.tones[:3] if pc not in used] or list(chord.tones[:3])
                pitch = min((voices[v] + (pc - voices[v] + 6) % 12 - 6 for pc in pcs), key=lambda p: abs(p - voices[v]))
                pitch += 12 * round((home - pitch) / 24)  # drift back home by octaves
                while v and pitch >= voices[v - 1]:
                    pitch -= 12
                while pitch <= bass:
                    pitch += 12
                voices[v] = pitch
                used.append(pitch % 12)
            notes += [_Ev(p, beat, every, "melody" if v == 0 else "accomp") for v, p in enumerate(voices)]
            notes += [_Ev(p, beat, every, "bass") for p in ((bass, bass - 12) if doubled else (bass,))]
    return notes


def _octaves(plan: _Plan, rng) -> list[_Ev]:
    """A line in parallel octaves: the melody in the right hand over left-hand chords on the beat,
    or a bass line in the left hand under right-hand chords."""
    notes = []
    if rng.random() < 0.5:
        line = _melody(plan, rng, *plan.melody_range())
        for chord in plan.chords:
            root = _at_or_above(chord.tones[0], plan.low)
            notes += [_Ev(p, chord.beat + b, 0.9, "accomp") for b in range(int(chord.beats))
                      for p in (root, _at_or_above(chord.tones[2], root), root + 12)]
    else:
        line = _melody(plan, rng, plan.low + 12, plan.low + 26, role="bass")
        for chord in plan.chords:
            notes += [_Ev(p, chord.beat + b, 0.5, "accomp") for b in range(int(chord.beats))
                      for p in _tones(chord.tones[:3], plan.top - 20, plan.top - 9)]
    return notes + line + [e._replace(pitch=e.pitch - 12) for e in line]


def _runs(plan: _Plan, rng) -> list[_Ev]:
    """Fast scales, diatonic or (one time in three) chromatic, up to ~14 notes/s in the right hand,
    turning at the edges of its register, over held left-hand chords."""
    per_beat = _per_beat(plan, rng, (3, 4, 6, 8, 12, 16), max_rate=14, min_rate=6)
    low = max(plan.low + 20, 45)
    steps = list(range(low, plan.top + 1)) if rng.random() < 1 / 3 else _tones(plan.scale, low, plan.top)
    i, direction = int(rng.integers(len(steps))), 1 if rng.random() < 0.5 else -1
    notes = []
    for chord in plan.chords:
        n = int(round(chord.beats * per_beat))
        for k in range(n):
            if not 0 <= i + direction < len(steps):
                direction = -direction
            i += direction
            notes.append(_Ev(steps[i], chord.beat + k / per_beat, 1.1 / per_beat, "melody" if k == 0 else "accomp"))
        root = _at_or_above(chord.tones[0], plan.low)
        notes += [_Ev(p, chord.beat, chord.beats, "bass", held=True)
                  for p in (root, _at_or_above(chord.tones[2], root), root + 12)]
    return notes


def _repeated(plan: _Plan, rng) -> list[_Ev]:
    """Repeated notes or repeated chords (2–4 a beat, at most 10/s) in the right hand, over
    left-hand octaves on every beat."""
    per_beat = _per_beat(plan, rng, (2, 3, 4), max_rate=10)
    chords = rng.random() < 0.6
    notes = []
    for chord in plan.chords:
        top = _at_or_above(chord.tones[int(rng.integers(3))], plan.top - 14)
        right = [top] + (_tones(chord.tones, top - 9, top - 1)[-2:] if chords else [])
        for e in _figure([top], chord, per_beat, "melody", length=0.8):
            notes += [e._replace(pitch=p, role="melody" if p == top else "accomp") for p in right]
        root = _at_or_above(chord.tones[0], plan.low)
        notes += [_Ev(p, chord.beat + b, 0.9, "bass") for b in range(int(chord.beats)) for p in (root, root + 12)]
    return notes


def _trills(plan: _Plan, rng) -> list[_Ev]:
    """Trills (8–13 notes/s, with the upper scale neighbour, ending on the main note) on most of the
    melody's long notes, over a left-hand tremolo: a broken octave or root–fifth, 6–10 notes/s."""
    beat_s = 60 / plan.bpm
    trill, tremolo = rng.uniform(8, 13) * beat_s, rng.uniform(6, 10) * beat_s  # notes per beat
    scale = _tones(plan.scale, LOWEST_MIDI, HIGHEST_MIDI)
    interval = 12 if rng.random() < 0.5 else 7
    notes = []
    for e in _melody(plan, rng, *plan.melody_range()):
        n = int(e.beats * trill)
        if e.beats * beat_s < 0.4 or rng.random() < 0.3 or n < 3:
            notes.append(e)
            continue
        upper = next((p for p in scale if p > e.pitch), e.pitch + 1)
        n -= 1 - n % 2  # an odd count ends on the main note
        notes += [e._replace(pitch=upper if k % 2 else e.pitch, beat=e.beat + k * e.beats / n, beats=e.beats / n)
                  for k in range(n)]
    for chord in plan.chords:
        root = _at_or_above(chord.tones[0], plan.low)
        notes += _figure((root, root + interval), chord, tremolo, "accomp")
    return notes


def _rich_chords(plan: _Plan, rng) -> list[_Ev]:
    """Ten or more sounding notes: a bass octave, a left-hand chord and a four-note right-hand
    chord held through each harmony, and a legato melody above them all."""
    low = min(plan.low, 36)
    notes = _melody(plan, rng, low + 50, low + 68)
    for chord in plan.chords:
        root = _at_or_above(chord.tones[0], low)
        held = [root, root + 12] + _tones(chord.tones, root + 13, root + 24)[:3]
        held += _tones(chord.tones, low + 33, low + 49)[-4:]
        notes += [_Ev(p, chord.beat, chord.beats, "bass" if p <= root + 12 else "accomp", held=True) for p in held]
    return notes


@dataclass(frozen=True)
class _Texture:
    make: Callable[[_Plan, np.random.Generator], list[_Ev]]
    meters: tuple[int, ...] = (2, 3, 4)
    articulations: tuple[str, ...] = ("legato", "portato", "staccato")
    dry: bool = False  # played without pedal whatever the articulation
    weight: float = 1.0  # how often it is drawn, relative to the others


TEXTURES = {
    "alberti": _Texture(_alberti, (2, 4)),
    "waltz": _Texture(_waltz, (3,)),
    "broken_bass": _Texture(_broken_bass, (3, 4), ("legato",)),
    "arpeggios": _Texture(_arpeggios, (2, 3, 4), ("legato",)),
    "block_chords": _Texture(_block_chords, weight=1.5),
    "chorale": _Texture(_chorale, (3, 4), ("legato", "portato")),
    "octaves": _Texture(_octaves),
    "runs": _Texture(_runs, (2, 4), ("legato", "staccato"), dry=True),
    "repeated": _Texture(_repeated, (2, 3, 4), ("portato", "staccato")),
    "trills": _Texture(_trills, (2, 3, 4), ("legato",)),
    "rich_chords": _Texture(_rich_chords, (3, 4), ("legato",), weight=1.5),
}
