"""Piano rolls: MIDI -> roll, roll -> notes, notes -> MIDI.

A roll is a float32 array of shape (88, frames), row 0 = A0 (MIDI 21), row 87 = C8 (MIDI 108),
at ``fps`` frames per second (31.25 = 16 kHz / hop 512, §4). Like the paper we ignore velocity and
keep x_roll in {0, 1} (§3). Frame ``i`` covers [i / fps, (i + 1) / fps).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pretty_midi

from .config import LOWEST_MIDI, N_KEYS

log = logging.getLogger("diffroll.roll")

Note = tuple[float, float, int]  # (onset seconds, offset seconds, MIDI pitch)
FPS = 31.25
SUSTAIN_CC = 64


class MidiError(ValueError):
    """A MIDI file that cannot be used (unreadable, or without notes)."""


def load_midi(midi: str | Path | pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = Path(midi)
    if not path.is_file():
        raise MidiError(f"{path}: no such MIDI file")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido raises many kinds of errors for bad files
        raise MidiError(f"{path}: not a readable MIDI file ({err})") from err


def _sustain_spans(instrument: pretty_midi.Instrument) -> list[tuple[float, float]]:
    """(down, up) times of the sustain pedal (CC 64 >= 64 is down)."""
    spans, down = [], None
    for cc in sorted((c for c in instrument.control_changes if c.number == SUSTAIN_CC), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = cc.time
        elif cc.value < 64 and down is not None:
            spans.append((down, cc.time))
            down = None
    if down is not None:
        spans.append((down, float("inf")))
    return spans


def midi_notes(midi, sustain: bool = True) -> list[Note]:
    """The notes of all non-drum instruments, sorted by onset, as ``(onset, offset, pitch)``.

    With ``sustain`` a note released while the pedal is down sounds until the pedal is
    released or the same key is struck again (the MAESTRO convention of Hawthorne et al.).
    Notes outside A0–C8 are dropped, and their count is logged.
    """
    pm = load_midi(midi)
    notes: list[Note] = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        spans = _sustain_spans(inst) if sustain else []
        for n in inst.notes:
            end = n.end
            for down, up in spans:
                if down <= end < up:
                    end = max(end, min(up, pm.get_end_time()))
                    break
            notes.append((float(n.start), float(end), int(n.pitch)))
    notes.sort()
    if sustain:  # a re-struck key ends the sustained note before it
        last: dict[int, int] = {}
        for i, (on, off, p) in enumerate(notes):
            j = last.get(p)
            if j is not None and notes[j][1] > on:
                notes[j] = (notes[j][0], on, p)
            last[p] = i
    kept = [n for n in notes if LOWEST_MIDI <= n[2] < LOWEST_MIDI + N_KEYS and n[1] > n[0]]
    dropped = len(notes) - len(kept)
    if dropped:
        log.warning("%s: dropped %d notes outside A0-C8 or of zero length", _name(midi), dropped)
    return kept


def _name(midi) -> str:
    return "<PrettyMIDI>" if isinstance(midi, pretty_midi.PrettyMIDI) else str(midi)


def notes_to_roll(notes: list[Note], fps: float = FPS, n_frames: int | None = None) -> np.ndarray:
    """Rasterise notes: frames round(onset·fps) .. round(offset·fps) - 1 are on (at least one).

    When a key is struck again while its previous note still sounds, the previous note
    ends one frame early, so every onset stays a rising edge that :func:`roll_to_notes` sees.
    """
    if n_frames is None:
        n_frames = int(np.ceil(max((off for _, off, _ in notes), default=0.0) * fps)) + 1
    roll = np.zeros((N_KEYS, n_frames), dtype=np.float32)
    for on, off, pitch in sorted(notes):
        key = pitch - LOWEST_MIDI
        start = int(round(on * fps))
        end = max(int(round(off * fps)), start + 1)
        if start >= n_frames or not 0 <= key < N_KEYS:
            continue
        if start > 0 and roll[key, start - 1] > 0:  # re-struck: open a one-frame gap
            roll[key, start - 1] = 0
        roll[key, start:min(end, n_frames)] = 1
    return roll


def midi_to_roll(midi, fps: float = FPS, n_frames: int | None = None, sustain: bool = True) -> np.ndarray:
    """MIDI file (or PrettyMIDI) -> roll of shape (88, frames).

    Raises :class:`MidiError` for an unreadable file or one with no notes in A0–C8.
    """
    notes = midi_notes(midi, sustain=sustain)
    if not notes:
        raise MidiError(f"{_name(midi)}: MIDI has no notes between A0 and C8")
    return notes_to_roll(notes, fps=fps, n_frames=n_frames)


def roll_to_notes(roll, fps: float = FPS, threshold: float = 0.5) -> list[Note]:
    """Binarise x0 at ``threshold`` (§4) and read notes: onset = rising edge, offset = falling edge."""
    on = np.asarray(roll) > threshold
    if on.ndim != 2 or on.shape[0] != N_KEYS:
        raise ValueError(f"expected a roll of shape (88, frames), got {on.shape}")
    padded = np.pad(on, ((0, 0), (1, 1))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    notes: list[Note] = []
    for key in range(N_KEYS):
        starts = np.flatnonzero(edges[key] == 1)
        ends = np.flatnonzero(edges[key] == -1)
        notes.extend((s / fps, e / fps, key + LOWEST_MIDI) for s, e in zip(starts, ends))
    notes.sort()
    return notes


def notes_to_midi(notes: list[Note], path: str | Path | None = None, velocity: int = 80,
                  program: int = 0) -> pretty_midi.PrettyMIDI:
    """Notes in seconds -> a one-piano PrettyMIDI (written to ``path`` if given).

    Times are kept in seconds (frame index × hop / sr), so the MIDI plays at the audio's tempo.
    """
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=program, name="DiffRoll")
    piano.notes = [pretty_midi.Note(velocity=velocity, pitch=int(p), start=float(on), end=float(off))
                   for on, off, p in notes]
    pm.instruments.append(piano)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pm.write(str(path))
    return pm
