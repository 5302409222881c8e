"""Sustain pedalling as a pianist pedals.

The model (:func:`pedal_events`, :class:`PedalSettings`): legato ("syncopated") pedalling.
At each harmony change the pedal comes up a little *after* the new chord's onset (30–150 ms) and
goes down again shortly after that (50–200 ms), so the new harmony is caught without the old one.
Changes are grouped into phrases (4–8 changes, and a new phrase at each given break, e.g. a
section start); a phrase is dry (no pedal) with probability 0.2, or holds each pedal through
2–4 changes with probability 0.1; given ``dry`` spans (staccato and fast-run sections) are never
pedalled. Every delay is drawn in its range, which is the timing jitter. For scores without known
harmony, :func:`harmony_changes` finds the changes from the notes (a chord-template segmentation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pretty_midi

from ..core.harmony import harmony_changes

SUSTAIN = 64  # MIDI control number of the sustain pedal
PEDAL_DOWN, PEDAL_UP = 127, 0


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
