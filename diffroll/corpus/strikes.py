"""What the strings of a piano see of a MIDI file (shared by the procedural and the sampled
piano): each note as a strike with the time its damper falls (key up, pedal up, or the key struck
again), the sustain pedal's spans, and the dampers' decay envelopes."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pretty_midi

from ..core.roll import sustain_spans

SUSTAIN_CC = 64


T60_DB = 60.0 / (20 * np.log10(np.e))  # ln(1000): exp(-T60_DB · t / T60) falls by 60 dB at T60


RESTRIKE_T60 = 0.04  # a re-struck key's old vibration dies this fast


class Strike(NamedTuple):
    """One struck note as the strings see it (:func:`note_strikes`)."""

    onset: float
    release: float  # when the damper falls (key up, pedal up or re-strike); inf: never
    pitch: int
    velocity: int
    damping_t60: float  # how fast it dies after ``release``


def note_strikes(midi: pretty_midi.PrettyMIDI, damper_t60: float,
                 undamped_from: int = 128) -> tuple[list[Strike], float]:
    """The notes of all non-drum instruments as strikes sorted by onset, and the time of the
    last note-off or pedal event (shared by the procedural and the sampled piano).

    A note's damper falls at its key's release, postponed to the pedal's release if the pedal
    (CC 64, read as :func:`diffroll.core.roll.sustain_spans` does) is down then; a pedal never released
    is released at the last event; keys from ``undamped_from`` up have no damper; a key struck
    again while sounding is damped at the new strike in :data:`RESTRIKE_T60`.
    """
    instruments = [inst for inst in midi.instruments if not inst.is_drum]
    notes = [n for inst in instruments for n in inst.notes]
    if not notes:
        raise ValueError("nothing to render: the MIDI has no notes (drum tracks are ignored)")
    pedal_times = [c.time for inst in instruments for c in inst.control_changes if c.number == SUSTAIN_CC]
    last_event = max([n.end for n in notes] + pedal_times)
    strikes = []
    for inst in instruments:
        spans = sustain_spans(inst)
        for n in inst.notes:
            release = max(n.end, n.start)
            for down, up in spans:
                if down <= n.end < up:
                    release = max(release, min(up, last_event))
                    break
            if n.pitch >= undamped_from:
                release = np.inf
            strikes.append(Strike(max(n.start, 0.0), release, int(n.pitch), int(np.clip(n.velocity, 1, 127)),
                                  damper_t60))
    strikes.sort()
    next_onset: dict[int, float] = {}
    for i in range(len(strikes) - 1, -1, -1):  # a re-struck key restarts: the old note is damped
        s = strikes[i]
        later = next_onset.get(s.pitch)
        if later is not None and later < s.release:
            strikes[i] = s._replace(release=later, damping_t60=RESTRIKE_T60)
        next_onset[s.pitch] = s.onset
    return strikes, float(last_event)


def pedal_spans(midi: pretty_midi.PrettyMIDI, last_event: float) -> list[tuple[float, float]]:
    """The sustain pedal's (down, up) spans of all non-drum instruments, as
    :func:`diffroll.core.roll.sustain_spans` reads them; a pedal never released goes up at ``last_event``."""
    return sorted((down, min(up, last_event)) for inst in midi.instruments if not inst.is_drum
                  for down, up in sustain_spans(inst) if down < last_event)


def damper_curves(strikes: list[Strike], sample_rate: int) -> dict[float, np.ndarray]:
    """For each damping time among ``strikes``: the envelope after the damper falls, from 1 down
    to -60 dB at ``damping_t60`` seconds (float32, ``damping_t60`` seconds long)."""
    return {t60: np.exp(-T60_DB * np.arange(int(np.ceil(t60 * sample_rate))) / (t60 * sample_rate)).astype(np.float32)
            for t60 in {s.damping_t60 for s in strikes}}
