"""Piano rolls: MIDI -> roll, roll -> notes, notes -> MIDI.

A roll is a float32 array of shape (C·88, frames): C channels of 88 keys stacked, row 0 of each
channel = A0 (MIDI 21), row 87 = C8 (MIDI 108), at ``fps`` frames per second (31.25 = 16 kHz /
hop 512, §4). Frame ``i`` covers [i / fps, (i + 1) / fps). The channels (:data:`CHANNELS`):

- ``frame``: 1 while a key sounds (the paper's x_roll ∈ {0, 1}, §3). With the frame channel alone
  a re-struck key is a one-frame gap, as in the paper;
- ``onset``: 1 on a note's first frame (and a linear ramp over ``onset_frames`` frames if > 1);
  with it the frame channel has no re-strike gaps: a new onset inside a sounding note splits it;
- ``velocity``: MIDI velocity / 127 on the note's frames, 0 elsewhere;
- ``pedal``: 1 while the sustain pedal is down, the same on all 88 rows (beyond the paper; the
  pedal as a transcription target, as in Kong et al. 2021). Under the pedal a released key is
  silent to the ear only when the pedal comes up, so x̂0's frame rows fade on long pedalled notes;
  the pedal rows say how long they last (:func:`sustain_notes` on :func:`pedal_down_spans`).

``("frame",)`` is the paper's roll; ``("frame", "onset", "velocity")`` the note-state roll
(Onsets and Frames, Hawthorne et al. 2018, as a diffusion target). Notes are read back by
:func:`roll_to_notes`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pretty_midi

from .config import LOWEST_MIDI, N_KEYS

log = logging.getLogger("diffroll.core.roll")
ONSET_TOLERANCE = 0.05  # seconds: mir_eval's, and the window within which K samples agree on a note

FPS = 31.25
SUSTAIN_CC = 64
CHANNELS = ("frame", "onset", "velocity", "pedal")
DEFAULT_VELOCITY = 80


class Note(NamedTuple):
    """One note: onset and offset in seconds, MIDI pitch, MIDI velocity (1–127)."""

    onset: float
    offset: float
    pitch: int
    velocity: int = DEFAULT_VELOCITY


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


def sustain_spans(instrument: pretty_midi.Instrument) -> list[tuple[float, float]]:
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


def merged_sustain_spans(pm: pretty_midi.PrettyMIDI) -> tuple[float, tuple[tuple[float, float], ...]]:
    """(end time, (down, up) spans of the sustain pedal over all non-drum instruments, overlapping
    spans merged; a pedal still down at the end is released at the end of the MIDI)."""
    end = float(pm.get_end_time())
    spans = sorted((float(down), min(float(up), end)) for inst in pm.instruments if not inst.is_drum
                   for down, up in sustain_spans(inst) if down < end)
    merged: list[tuple[float, float]] = []
    for down, up in spans:
        if merged and down <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], up))
        else:
            merged.append((down, up))
    return end, tuple(merged)


def midi_notes(midi, sustain: bool = True) -> list[Note]:
    """The notes of all non-drum instruments, sorted by onset, as :class:`Note`.

    With ``sustain`` (:attr:`RollConfig.sustain`) a note released while the pedal is down sounds
    until the pedal is released or the same key is struck again (the MAESTRO / Onsets-and-Frames
    convention of Hawthorne et al.; :func:`sustain_notes`). Notes outside A0–C8 are dropped, and
    their count is logged.
    """
    pm = load_midi(midi)
    notes: list[Note] = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        played = [Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in inst.notes]
        notes += sustain_notes(played, sustain_spans(inst), pm.get_end_time(), restrike=False) if sustain else played
    notes = sustain_notes(notes, [], restrike=True) if sustain else sorted(notes)
    kept = [n for n in notes if LOWEST_MIDI <= n.pitch < LOWEST_MIDI + N_KEYS and n.offset > n.onset]
    dropped = len(notes) - len(kept)
    if dropped:
        log.warning("%s: dropped %d notes outside A0-C8 or of zero length", _name(midi), dropped)
    return kept


def sustain_notes(notes: Sequence[Note], spans: Sequence[tuple[float, float]], end: float = float("inf"),
                  restrike: bool = True) -> list[Note]:
    """The notes as the sustain pedal holds them, sorted: a note that ends while the pedal is down
    (``spans``: (down, up) seconds) lasts until the pedal comes up (at most ``end``); with
    ``restrike``, a note still sounding when its key is struck again ends there.
    """
    out = []
    for note in notes:
        note = Note(*note)
        for down, up in spans:
            if down <= note.offset < up:
                note = note._replace(offset=max(note.offset, min(up, end)))
                break
        out.append(note)
    out.sort()
    if restrike:
        last: dict[int, int] = {}
        for i, note in enumerate(out):
            j = last.get(note.pitch)
            if j is not None and out[j].offset > note.onset:
                out[j] = out[j]._replace(offset=note.onset)
            last[note.pitch] = i
        out.sort()
    return out


def pedal_track(roll, channels: Sequence[str]) -> np.ndarray:
    """(frames,) the mean of a roll's ``pedal`` rows: x̂0's belief that the sustain pedal is down."""
    return np.asarray(roll, dtype=np.float32)[channel_rows(check_channels(channels), "pedal")].mean(axis=0)


def pedal_down_spans(track: np.ndarray, fps: float = FPS, threshold: float = 0.5) -> list[tuple[float, float]]:
    """(down, up) seconds of the runs of a :func:`pedal_track` above ``threshold``."""
    return [(float(s / fps), float(e / fps)) for s, e in zip(*_runs(np.asarray(track) > threshold))]


def _name(midi) -> str:
    return "<PrettyMIDI>" if isinstance(midi, pretty_midi.PrettyMIDI) else str(midi)


def clip_notes(notes: Sequence[Note], seconds: float) -> list[Note]:
    """The notes that start before ``seconds``, their offsets clipped to it (a piece cut short)."""
    return [Note(*n)._replace(offset=min(n[1], seconds)) for n in notes if n[0] < seconds]


def channel_rows(channels: Sequence[str], name: str) -> slice:
    """Rows of channel ``name`` in a roll with ``channels``."""
    if name not in channels:
        raise ValueError(f"the roll has no {name!r} channel (channels: {list(channels)})")
    i = list(channels).index(name)
    return slice(i * N_KEYS, (i + 1) * N_KEYS)


def check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels or channels[0] != "frame" or len(set(channels)) != len(channels):
        raise ValueError(f"roll channels {list(channels)}: need 'frame' first, then any of {CHANNELS[1:]}, "
                         "each once")
    return channels


def notes_to_roll(notes: Sequence[Note], fps: float = FPS, n_frames: int | None = None,
                  channels: Sequence[str] = ("frame",), onset_frames: int = 1,
                  pedal: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """Rasterise notes to a (len(channels)·88, n_frames) roll: frames round(onset·fps) ..
    round(offset·fps) − 1 are on (at least one). A ``pedal`` channel needs ``pedal``: the (down, up)
    seconds of the sustain pedal (:func:`diffroll.corpus.segments.pedal_spans`; empty: never down).

    Frame-only rolls (the paper's): when a key is struck again while its previous note still
    sounds, the previous note ends one frame early, so every onset stays a rising edge. With an
    ``onset`` channel the frame channel stays on and the onset marks the re-strike.
    """
    channels = check_channels(channels)
    if n_frames is None:
        n_frames = int(np.ceil(max((n[1] for n in notes), default=0.0) * fps)) + 1
    roll = np.zeros((len(channels), N_KEYS, n_frames), dtype=np.float32)
    frame = roll[channels.index("frame")]
    onset = roll[channels.index("onset")] if "onset" in channels else None
    velocity = roll[channels.index("velocity")] if "velocity" in channels else None
    if "pedal" in channels:
        if pedal is None:
            raise ValueError("a roll with a 'pedal' channel needs the pedal's (down, up) spans: pedal=[...]")
        for down, up in pedal:
            roll[channels.index("pedal"), :, int(round(down * fps)):int(round(min(up, 1e9) * fps))] = 1
    ramp = np.linspace(1.0, 0.0, onset_frames, endpoint=False, dtype=np.float32)
    for note in sorted(Note(*n) for n in notes):
        key = note.pitch - LOWEST_MIDI
        start = int(round(note.onset * fps))
        end = min(max(int(round(note.offset * fps)), start + 1), n_frames)
        if start >= n_frames or not 0 <= key < N_KEYS:
            continue
        if onset is None and start > 0 and frame[key, start - 1] > 0:  # re-struck: open a one-frame gap
            frame[key, start - 1] = 0
        frame[key, start:end] = 1
        if onset is not None:
            span = min(onset_frames, n_frames - start)
            onset[key, start:start + span] = np.maximum(onset[key, start:start + span], ramp[:span])
        if velocity is not None:
            velocity[key, start:end] = note.velocity / 127.0
    return roll.reshape(len(channels) * N_KEYS, n_frames)


def midi_to_roll(midi, fps: float = FPS, n_frames: int | None = None, sustain: bool = True,
                 channels: Sequence[str] = ("frame",), onset_frames: int = 1) -> np.ndarray:
    """MIDI file (or PrettyMIDI) -> roll of shape (len(channels)·88, frames).

    Raises :class:`MidiError` for an unreadable file or one with no notes in A0–C8.
    """
    notes = midi_notes(midi, sustain=sustain)
    if not notes:
        raise MidiError(f"{_name(midi)}: MIDI has no notes between A0 and C8")
    pedal = merged_sustain_spans(load_midi(midi))[1] if "pedal" in channels else None
    return notes_to_roll(notes, fps=fps, n_frames=n_frames, channels=channels, onset_frames=onset_frames, pedal=pedal)


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the True runs of a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _velocity_at(velocity: np.ndarray | None, key: int, start: int, end: int) -> int:
    if velocity is None:
        return DEFAULT_VELOCITY
    return int(np.clip(round(127 * float(velocity[key, start:max(end, start + 1)][:2].mean())), 1, 127))


def roll_to_notes(roll, fps: float = FPS, threshold: float = 0.5, channels: Sequence[str] = ("frame",),
                  onset_threshold: float = 0.5, min_frames_without_onset: int | None = None,
                  min_velocity: int = 0, offset_threshold: float | None = None,
                  restrike_threshold: float | None = None) -> list[Note]:
    """Read notes from x̂0 (a roll of ``channels``, thresholds as in §4).

    - Frame-only rolls: onset = rising edge of frame > ``threshold``, offset = falling edge.
    - With an ``onset`` channel: a note starts where onset > ``onset_threshold`` rises (the first
      frame of each run above it) and lasts while the frame channel stays above
      ``offset_threshold`` (default: ``threshold``) or the onset channel above its threshold, up to
      the next onset of the same key that peaks above ``restrike_threshold`` (default:
      ``onset_threshold``, every onset), which is a re-strike; a weaker onset inside a sounding
      note is part of it. A frame dip without an onset never splits a note. A frame run
      (frame > ``threshold``) that no onset starts gives a note only when
      ``min_frames_without_onset`` is set and the run is at least that long.
    - Velocity (with a ``velocity`` channel) is read at the onset: the mean of its first two
      frames × 127; otherwise :data:`DEFAULT_VELOCITY`. Notes read below ``min_velocity`` are
      dropped: the velocity channel says the key was not struck (a spurious onset).
    """
    channels = check_channels(channels)
    x = np.asarray(roll, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != N_KEYS * len(channels):
        raise ValueError(f"expected a roll of shape ({N_KEYS * len(channels)}, frames) for channels "
                         f"{list(channels)}, got {x.shape}")
    x = x.reshape(len(channels), N_KEYS, -1)
    frame = x[channels.index("frame")] > threshold
    velocity = x[channels.index("velocity")] if "velocity" in channels else None
    notes: list[Note] = []
    if "onset" not in channels:
        for key in range(N_KEYS):
            for s, e in zip(*_runs(frame[key])):
                notes.append(Note(s / fps, e / fps, key + LOWEST_MIDI, _velocity_at(velocity, key, s, e)))
        return _loud_enough(sorted(notes), velocity, min_velocity)
    onset_p = x[channels.index("onset")]
    onset = onset_p > onset_threshold
    held = frame if offset_threshold is None else x[channels.index("frame")] > offset_threshold
    sounding = held | onset
    restrike = onset_threshold if restrike_threshold is None else max(restrike_threshold, onset_threshold)
    n_frames = x.shape[-1]
    for key in range(N_KEYS):
        starts, ends = _runs(onset[key])
        strong = [restrike == onset_threshold or float(onset_p[key, s:e].max()) > restrike
                  for s, e in zip(starts, ends)]
        covered = np.zeros(n_frames, dtype=bool)
        i = 0
        while i < len(starts):
            s, e, i = starts[i], starts[i] + 1, i + 1
            while e < n_frames and sounding[key, e]:
                if i < len(starts) and e == starts[i]:
                    if strong[i]:
                        break  # a re-strike: the next note starts here
                    i += 1  # a weak onset inside a sounding note is part of it
                e += 1
            covered[s:e] = True
            notes.append(Note(s / fps, e / fps, key + LOWEST_MIDI, _velocity_at(velocity, key, s, e)))
        if min_frames_without_onset is not None:
            for s, e in zip(*_runs(frame[key] & ~covered)):
                if e - s >= min_frames_without_onset and not covered[max(s - 1, 0)]:
                    notes.append(Note(s / fps, e / fps, key + LOWEST_MIDI, _velocity_at(velocity, key, s, e)))
    return _loud_enough(sorted(notes), velocity, min_velocity)


def _loud_enough(notes: list[Note], velocity: np.ndarray | None, min_velocity: int) -> list[Note]:
    """The notes at or above ``min_velocity`` (all of them without a velocity channel)."""
    if velocity is None or min_velocity <= 0:
        return notes
    return [n for n in notes if n.velocity >= min_velocity]


def notes_to_midi(notes: Sequence[Note], path: str | Path | None = None, velocity: int | None = None,
                  program: int = 0, resolution: int = 220) -> pretty_midi.PrettyMIDI:
    """Notes in seconds -> a one-piano PrettyMIDI at 120 bpm, ``resolution`` ticks a beat (written
    to ``path`` if given).

    Each note keeps its own velocity (``velocity`` overrides them all). Times are kept in seconds
    (frame index × hop / sr), so the MIDI plays at the audio's tempo.
    """
    pm = pretty_midi.PrettyMIDI(resolution=resolution)
    piano = pretty_midi.Instrument(program=program, name="DiffRoll")
    piano.notes = [pretty_midi.Note(velocity=int(velocity if velocity is not None else Note(*n).velocity),
                                    pitch=int(n[2]), start=float(n[0]), end=float(n[1])) for n in notes]
    pm.instruments.append(piano)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pm.write(str(path))
    return pm


def note_array(notes) -> np.ndarray:
    """Notes as an (n, 4) float64 array of (onset s, offset s, pitch, velocity): 32 bytes a note."""
    if isinstance(notes, np.ndarray):
        return notes.reshape(-1, 4).astype(np.float64, copy=False)
    return np.asarray([tuple(Note(*n)) for n in notes], dtype=np.float64).reshape(-1, 4)


def array_notes(arr: np.ndarray) -> list[Note]:
    """The inverse of :func:`note_array`."""
    return [Note(float(a), float(b), int(p), int(v)) for a, b, p, v in np.asarray(arr)]
