"""Piano music as a pianist plays it: two-hand textures, sustain pedalling, and scores re-voiced
for piano.

The training scores (chorales, quartets, the studies of :mod:`diffroll.corpus.performance`) have no
sustain pedal and few pianistic textures. :func:`pianistic_piece` writes two-hand pieces from
random sections; each section is one texture over a chord progression in a random key (major or
minor, diatonic, with some secondary dominants), at its own tempo (40–200 bpm) with rubato (a
±10–15 % sway and a ritardando at its end), a dynamics curve (level, crescendo or diminuendo,
phrase arcs, melody over accompaniment, velocities 15–120) and an articulation (legato with
overlaps, portato or staccato). The textures, one function each, written in beats:

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

Pedalling model (:func:`pedal_events`, :class:`PedalSettings`): legato ("syncopated") pedalling.
At each harmony change the pedal comes up a little *after* the new chord's onset (30–150 ms) and
goes down again shortly after that (50–200 ms), so the new harmony is caught without the old one.
Changes are grouped into phrases (4–8 changes, and a new phrase at each given break, e.g. a
section start); a phrase is dry (no pedal) with probability 0.2, or holds each pedal through
2–4 changes with probability 0.1; given ``dry`` spans (staccato and fast-run sections) are never
pedalled. Every delay is drawn in its range, which is the timing jitter. For scores without known
harmony, :func:`harmony_changes` finds the changes from the notes (a chord-template segmentation).

:func:`revoice_for_piano` spreads an ensemble score (3–6 voices in a narrow range) over two
hands. Everything works on ``pretty_midi`` objects and a numpy ``Generator``, so the same seed
gives the same MIDI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pretty_midi

from ..core.config import LOWEST_MIDI
from ..core.harmony import harmony_changes, onset_clusters
from .performance import HIGHEST_MIDI, as_midi, piano_notes

SUSTAIN = 64  # MIDI control number of the sustain pedal
PEDAL_DOWN, PEDAL_UP = 127, 0
MIN_BPM, MAX_BPM = 40.0, 200.0
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


# --- pitches ----------------------------------------------------------------------------------

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


# --- a section: its plan, and the textures written over it -----------------------------------

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
_ARTICULATION = {"legato": (1.05, 1.25), "portato": (0.7, 0.85), "staccato": (0.3, 0.5)}  # x written length
_ROLE_LOUDNESS = {"melody": 10.0, "bass": 0.0, "accomp": -10.0}


# --- performing a section: tempo, dynamics, articulation -------------------------------------

@dataclass(frozen=True)
class Section:
    """One section of a pianistic piece, as drawn and performed (times in seconds)."""

    texture: str
    start: float
    end: float
    bpm: float  # the nominal tempo, before rubato
    meter: int
    beats: float
    key: int  # tonic pitch class
    minor: bool
    articulation: str
    dry: bool  # played without pedal


@dataclass(frozen=True)
class PianisticScore:
    """A performed piece before pedalling: its notes, the onsets of its harmonies and its sections."""

    notes: list[pretty_midi.Note]
    change_times: list[float]
    sections: list[Section]

    @property
    def breaks(self) -> list[float]:
        return [s.start for s in self.sections]

    @property
    def dry_spans(self) -> list[tuple[float, float]]:
        return [(s.start, s.end) for s in self.sections if s.dry]


def _plan(rng: np.random.Generator, texture: _Texture, seconds: float) -> _Plan:
    """Meter, tempo (log-uniform 40–200 bpm), key, registers and a progression lasting about
    ``seconds``, one harmony per half bar, bar or two bars (0.8–5 s each where possible)."""
    meter = int(rng.choice(texture.meters))
    bpm = float(np.exp(rng.uniform(np.log(MIN_BPM), np.log(MAX_BPM))))
    beat_s = 60.0 / bpm
    spans = [b for b in (meter / 2, meter, 2 * meter) if b == int(b) and 0.8 <= b * beat_s <= 5.0] or [meter]
    chord_beats = float(rng.choice(spans))
    n = max(2, int(round(seconds / (chord_beats * beat_s))))
    key, minor = int(rng.integers(12)), bool(rng.random() < 0.4)
    chords = tuple(_Chord(i * chord_beats, chord_beats, tuple((key + pc) % 12 for pc in tones))
                   for i, tones in enumerate(_progression(n, minor, rng)))
    low = LOWEST_MIDI + int(rng.integers(0, 22))  # A0 .. F#2
    top = 76 + int(rng.integers(0, HIGHEST_MIDI - 76 + 1))  # E5 .. C8
    return _Plan(key, minor, meter, bpm, chords, low, top)


def _clock(plan: _Plan, rng) -> Callable[[float], float]:
    """Beat -> seconds under rubato: the tempo sways by ±10–15 % in phrase-long waves and slows by
    20–45 % over the last bar or two (at most half the section)."""
    beats = plan.beats
    grid = np.linspace(0.0, beats, int(beats * 24) + 2)
    depth, period = rng.uniform(0.10, 0.15), plan.meter * float(rng.choice([2, 4]))
    phase = rng.uniform(0, 2 * np.pi, size=2)
    wave = 2 * np.pi * grid / period
    sway = depth * (0.7 * np.sin(wave + phase[0]) + 0.3 * np.sin(2 * wave + phase[1]))
    rit_beats = min(beats / 2, plan.meter * rng.uniform(1, 2))
    ramp = np.clip((grid - (beats - rit_beats)) / rit_beats, 0, 1)
    speed = plan.bpm / 60 * (1 + sway) * (1 - rng.uniform(0.2, 0.45) * ramp ** 1.5)  # beats per second
    seconds = np.concatenate([[0.0], np.cumsum(np.diff(grid) / ((speed[1:] + speed[:-1]) / 2))])
    return lambda beat: float(np.interp(beat, grid, seconds))


def _loudness(plan: _Plan, rng) -> Callable[[_Ev], float]:
    """Mean velocity of a note: the section's level (35–95), a crescendo or diminuendo of up to
    ±25 across it, arcs over 2- or 4-bar phrases, downbeat accents, melody over accompaniment."""
    level, trend, arc = rng.uniform(35, 95), rng.uniform(-25, 25), rng.uniform(4, 14)
    phrase = plan.meter * float(rng.choice([2, 4]))

    def velocity(e: _Ev) -> float:
        accent = 4.0 if e.beat % plan.meter < 1e-6 else 0.0
        return (level + trend * (e.beat / plan.beats - 0.5) + arc * np.sin(np.pi * (e.beat % phrase) / phrase)
                + _ROLE_LOUDNESS[e.role] + accent)
    return velocity


def _perform(name: str, plan: _Plan, rng, start: float) -> tuple[list[pretty_midi.Note], list[float], Section]:
    """A section's notes (from ``start`` s), its harmony onsets and its record."""
    texture = TEXTURES[name]
    events = texture.make(plan, rng)
    articulation = str(rng.choice(texture.articulations))
    clock, loudness = _clock(plan, rng), _loudness(plan, rng)
    shortest, longest = _ARTICULATION[articulation]
    notes = []
    for e in events:
        length = e.beats * (1.0 if e.held else rng.uniform(shortest, longest))
        on = start + clock(e.beat)
        velocity = int(np.clip(round(loudness(e) + rng.normal(0, 5)), 15, 120))
        notes.append(pretty_midi.Note(velocity, _fold(e.pitch), on, max(start + clock(e.beat + length), on + 0.04)))
    end = start + clock(plan.beats)
    section = Section(name, start, end, plan.bpm, plan.meter, plan.beats, plan.key, plan.minor, articulation,
                      texture.dry or articulation == "staccato")
    return notes, [start + clock(c.beat) for c in plan.chords], section


def pianistic_score(rng: np.random.Generator, seconds: float = 45.0) -> PianisticScore:
    """Random sections (7–16 s each, see the module docstring) one after another, with a breath
    of 0.05–0.4 s between them, until ``seconds`` are filled; notes starting later are dropped
    and the rest cleaned by :func:`~diffroll.corpus.performance.piano_notes`."""
    notes: list[pretty_midi.Note] = []
    changes: list[float] = []
    sections: list[Section] = []
    names = list(TEXTURES)
    weights = np.array([TEXTURES[name].weight for name in names])
    t = 0.0
    while t < seconds:
        name = str(rng.choice(names, p=weights / weights.sum()))
        plan = _plan(rng, TEXTURES[name], min(rng.uniform(7, 16), max(seconds - t, 4.0)))
        section_notes, section_changes, section = _perform(name, plan, rng, t)
        notes += section_notes
        changes += section_changes
        sections.append(section)
        t = section.end + rng.uniform(0.05, 0.4)
    notes = piano_notes(as_midi([n for n in notes if n.start < seconds]))
    return PianisticScore(notes, [c for c in changes if c < seconds], sections)


def pianistic_piece(rng: np.random.Generator, seconds: float = 45.0, pedal: bool = True,
                    pedal_settings: PedalSettings | None = None) -> pretty_midi.PrettyMIDI:
    """A two-hand piece of about ``seconds`` (see :func:`pianistic_score`), pedalled at its
    harmony changes (staccato and fast-run sections dry) unless ``pedal`` is False. The notes do
    not depend on ``pedal``: the pedal is drawn after them."""
    score = pianistic_score(rng, seconds)
    pm = as_midi(score.notes)
    if pedal:
        add_pedal(pm, rng, score.change_times, pedal_settings, breaks=score.breaks, dry=score.dry_spans)
    return pm


# --- pedalling --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PedalSettings:
    """How :func:`pedal_events` pedals: times in seconds, each (low, high) range drawn uniformly."""

    release_delay: tuple[float, float] = (0.03, 0.15)  # up, this long after a new harmony's onset
    repress_delay: tuple[float, float] = (0.05, 0.20)  # down again, this long after the release
    first_press_delay: tuple[float, float] = (0.0, 0.10)  # a pedalled phrase's first press, after its first onset
    final_release: tuple[float, float] = (0.0, 0.30)  # the last release, this long before the last note ends
    phrase_changes: tuple[int, int] = (4, 8)  # harmony changes per phrase (dry and long pedals are per phrase)
    dry_probability: float = 0.2  # a phrase played without pedal
    long_pedal_probability: float = 0.1  # a phrase that holds each pedal through several changes
    long_pedal_changes: tuple[int, int] = (2, 4)  # how many changes one long pedal spans
    min_gap: float = 0.02  # no two pedal events closer than this


def _draw(rng, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _pedal_plan(changes: list[float], rng, s: PedalSettings, breaks: Sequence[float],
                dry: Sequence[tuple[float, float]]) -> list[str]:
    """Per change: "change" (release and press again), "hold" (a long pedal goes on) or "dry"."""
    starts = {round(b, 6) for b in breaks} | {round(a, 6) for a, _ in dry}
    plan, left, is_dry, is_long, hold = [], 0, False, False, 0
    for c in changes:
        if left == 0 or c in starts:  # a new phrase
            left = int(rng.integers(s.phrase_changes[0], s.phrase_changes[1] + 1))
            is_dry, is_long, hold = rng.random() < s.dry_probability, rng.random() < s.long_pedal_probability, 0
        left -= 1
        if is_dry or any(a <= c < b for a, b in dry):
            plan.append("dry")
        elif hold > 0:
            plan.append("hold")
            hold -= 1
        else:
            plan.append("change")
            hold = int(rng.integers(s.long_pedal_changes[0], s.long_pedal_changes[1] + 1)) - 1 if is_long else 0
    return plan


def pedal_events(notes: Sequence[pretty_midi.Note], change_times: Sequence[float], rng: np.random.Generator,
                 settings: PedalSettings | None = None, *, breaks: Sequence[float] = (),
                 dry: Sequence[tuple[float, float]] = ()) -> list[pretty_midi.ControlChange]:
    """Legato sustain pedalling (CC64: 127 down, 0 up) for ``notes`` whose harmonies start at
    ``change_times``: up 30–150 ms after each change, down again 50–200 ms later; phrases start at
    ``breaks``; ``dry`` spans are never pedalled (see :class:`PedalSettings` for the rest).

    The events alternate down/up, start down, end up no later than the last note's end, and are
    at least ``min_gap`` apart; a change too soon after the last event is pedalled through.
    """
    s = settings or PedalSettings()
    if not notes:
        return []
    end = max(n.end for n in notes)
    dry = [(round(a, 6), round(b, 6)) for a, b in dry]
    changes = sorted({round(c, 6) for c in [*change_times, *(a for a, _ in dry)] if 0 <= c < end})
    events: list[tuple[float, bool]] = []  # (time, down)

    def room(t: float) -> bool:
        return not events or t >= events[-1][0] + s.min_gap

    def lift(t: float) -> None:  # pedal up at t, or never down when it was pressed too recently
        t = min(t, end)
        if room(t):
            events.append((t, False))
        else:
            events.pop()

    for c, action in zip(changes, _pedal_plan(changes, rng, s, breaks, dry)):
        is_down = bool(events) and events[-1][1]
        if action == "dry":
            if is_down:
                lift(c + _draw(rng, s.release_delay))
        elif not is_down:
            press = c + _draw(rng, s.first_press_delay)
            press = max(press, events[-1][0] + s.min_gap) if events else press
            if press < end - s.min_gap:
                events.append((press, True))
        elif action == "change":
            release = c + _draw(rng, s.release_delay)
            press = release + _draw(rng, s.repress_delay)
            if room(release) and press < end - s.min_gap:
                events += [(release, False), (press, True)]
    if events and events[-1][1]:
        lift(max(end - _draw(rng, s.final_release), events[-1][0] + s.min_gap))
    return [pretty_midi.ControlChange(SUSTAIN, PEDAL_DOWN if down else PEDAL_UP, float(t)) for t, down in events]


def add_pedal(pm: pretty_midi.PrettyMIDI, rng: np.random.Generator, change_times: Sequence[float] | None = None,
              settings: PedalSettings | None = None, *, breaks: Sequence[float] = (),
              dry: Sequence[tuple[float, float]] = ()) -> pretty_midi.PrettyMIDI:
    """Replace the sustain pedal of ``pm``'s first instrument by :func:`pedal_events` (in place;
    also returned). Without ``change_times`` the harmony changes are found by :func:`harmony_changes`."""
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    if change_times is None:
        change_times = harmony_changes(notes)
    if not pm.instruments:
        return pm
    piano = pm.instruments[0]
    kept = [cc for cc in piano.control_changes if cc.number != SUSTAIN]
    piano.control_changes = sorted(kept + pedal_events(notes, change_times, rng, settings, breaks=breaks, dry=dry),
                                   key=lambda cc: cc.time)
    return pm


def pedal_spans(control_changes: Sequence[pretty_midi.ControlChange]) -> list[tuple[float, float]]:
    """(down, up) times of the sustain pedal from well-formed CC64 events."""
    ccs = sorted((cc for cc in control_changes if cc.number == SUSTAIN), key=lambda cc: cc.time)
    downs = [cc.time for cc in ccs if cc.value >= 64]
    ups = [cc.time for cc in ccs if cc.value < 64]
    return list(zip(downs, ups))


# --- re-voicing ensemble scores for piano ---------------------------------------------------------

@dataclass(frozen=True)
class _Voicing:
    bass_down: bool  # the bass an octave lower
    bass_octave: bool  # the bass doubled an octave below
    spread: bool  # the lower inner voices an octave lower (open position)
    melody_octave: bool  # the melody doubled an octave above
    broken_bass: bool  # long bass notes broken into an Alberti or arpeggio figure


def _draw_voicing(rng) -> _Voicing:
    """Each option with its own probability; at least one that widens the range."""
    v = _Voicing(*(bool(rng.random() < p) for p in (0.5, 0.5, 0.5, 0.3, 0.2)))
    if not (v.bass_down or v.bass_octave or v.melody_octave):
        v = _Voicing(v.bass_down, True, v.spread, v.melody_octave, v.broken_bass)
    return v


def _broken(bass: int, sounding_pcs: set[int], start: float, end: float, step: float,
            velocity: int) -> list[pretty_midi.Note]:
    """The bass note ``bass`` broken into an Alberti figure (or an arpeggio, with one other tone)
    over the chord sounding above it, ``step`` s a note, from ``start`` to ``end``."""
    above = _tones(sorted(sounding_pcs - {bass % 12}), bass + 1, bass + 16)[:3]
    figure = (bass, above[-1], above[0], above[-1]) if len(above) >= 2 else (bass, *above, bass + 12)
    n = int((end - start) / step)
    return [pretty_midi.Note(velocity, figure[i % len(figure)], start + i * step, start + (i + 1) * step)
            for i in range(n)]


def _revoiced(pitch: int, v: _Voicing, lowest: int, highest: int, bass: int, is_bass: bool) -> list[tuple[int, int]]:
    """The (pitch, velocity drop) notes that play one score note: ``lowest``/``highest`` sound
    with it, ``bass`` is where the bass goes."""
    if is_bass:
        return [(bass, 0)] + ([(bass - 12, 6)] if v.bass_octave else [])
    if pitch == highest:
        return [(pitch, 0)] + ([(pitch + 12, 6)] if v.melody_octave else [])
    if v.spread and pitch < (lowest + highest) / 2 and pitch - 12 > bass + 2:
        return [(pitch - 12, 0)]
    return [(pitch, 0)]


def revoice_for_piano(notes: Sequence[pretty_midi.Note], rng: np.random.Generator) -> list[pretty_midi.Note]:
    """Re-voice an ensemble score (chorale, quartet, madrigal) for two hands, phrase by phrase
    (8–24 onsets, each with its own :class:`_Voicing`): the bass an octave lower and/or doubled
    an octave below, the inner voices below the middle of the chord an octave lower, the melody
    doubled an octave above, and sometimes long bass notes broken into an Alberti figure. The
    score's onsets and lengths are kept (a broken bass note becomes its figure); the result is
    cleaned by :func:`~diffroll.corpus.performance.piano_notes` (on the keyboard, no overlapping
    repetitions of a key)."""
    if not notes:
        return []
    notes = sorted(notes, key=lambda n: (n.start, n.pitch))
    onsets = onset_clusters(notes)
    step = max(float(np.median(np.diff(onsets))) / 2 if len(onsets) > 1 else 0.25, 0.1)  # of a broken bass
    voicings: list[_Voicing] = []
    while len(voicings) < len(onsets):
        voicings += [_draw_voicing(rng)] * int(rng.integers(8, 25))
    starts, ends = np.array([n.start for n in notes]), np.array([n.end for n in notes])
    pitches = np.array([n.pitch for n in notes])
    out = []
    for n in notes:
        v = voicings[int(np.searchsorted(onsets, n.start + 0.03, side="right")) - 1]
        sounding = pitches[(starts <= n.start + 0.03) & (ends > n.start)]
        lowest, highest = int(sounding.min()), int(sounding.max())
        is_bass = n.pitch == lowest and (len(sounding) > 1 or n.pitch < 60)
        bass = lowest - 12 if v.bass_down and lowest - 12 >= LOWEST_MIDI else lowest
        played = _revoiced(n.pitch, v, lowest, highest, bass, is_bass)
        if is_bass and v.broken_bass and n.end - n.start >= 4 * step:
            out += _broken(bass, {int(p) % 12 for p in sounding}, n.start, n.end, step, n.velocity)
            played = played[1:]
        out += [pretty_midi.Note(max(1, n.velocity - drop), p, n.start, n.end)
                for p, drop in played if LOWEST_MIDI <= p <= HIGHEST_MIDI]
    return piano_notes(as_midi(out))
