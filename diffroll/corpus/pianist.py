"""Piano music as a pianist plays it: two-hand textures, sustain pedalling, and scores re-voiced
for piano.

The training scores (chorales, quartets, the studies of :mod:`diffroll.corpus.performance`) have no
sustain pedal and few pianistic textures. :func:`pianistic_piece` writes two-hand pieces from
random sections; each section is one texture over a chord progression in a random key (major or
minor, diatonic, with some secondary dominants), at its own tempo (40–200 bpm) with rubato (a
±10–15 % sway and a ritardando at its end), a dynamics curve (level, crescendo or diminuendo,
phrase arcs, melody over accompaniment, velocities 15–120) and an articulation (legato with
overlaps, portato or staccato). The textures and progressions are :mod:`diffroll.corpus.textures`;
the pedalling (legato pedalling at the harmony changes, by phrase) is :mod:`diffroll.corpus.pedal`.

:func:`revoice_for_piano` spreads an ensemble score (3–6 voices in a narrow range) over two
hands. Everything works on ``pretty_midi`` objects and a numpy ``Generator``, so the same seed
gives the same MIDI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pretty_midi

from ..core.config import LOWEST_MIDI
from ..core.harmony import onset_clusters
from .pedal import PedalSettings, add_pedal
from .performance import HIGHEST_MIDI, as_midi, piano_notes
from .textures import TEXTURES, _Chord, _Ev, _fold, _Plan, _progression, _Texture, _tones

MIN_BPM, MAX_BPM = 40.0, 200.0
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
