"""Notes from x̂0: a whole roll (:func:`decode_roll`) or a roll fed window by window
(:class:`NoteStream`, the same notes holding only the frames of notes not yet over), with the
sustain pedal's channel or the guess of pedal-held notes (:mod:`diffroll.transcription.held_notes`).
"""
from __future__ import annotations

import logging

import numpy as np

from ..core.config import N_KEYS
from ..core.roll import (Note, array_notes, channel_rows, note_array, pedal_down_spans, pedal_track, roll_to_notes,
                         sustain_notes)
from .held_notes import Tracks, frame_tracks, hold_notes, join_tracks, note_shapes
from .settings import DecodeSettings

log = logging.getLogger("diffroll.transcription.decoding")

MAX_PENDING_SECONDS = 600.0  # a key sounding without a break for longer than this is cut there


def decode_roll(roll: np.ndarray, fps: float, settings: DecodeSettings) -> list[Note]:
    """Notes of a whole roll (frame indices as times: frame / fps); with a pedal channel
    (:attr:`DecodeSettings.uses_pedal`) a note that ends while the pedal is down lasts until it
    comes up or its key is struck again (:func:`diffroll.core.roll.sustain_notes`); without one, with
    :attr:`DecodeSettings.held_notes`, the notes a pedal probably held last to the next harmony
    change (:mod:`diffroll.transcription.held_notes`)."""
    notes = _decode_keys(roll, fps, settings)
    if settings.uses_pedal:
        return _held_by_pedal(notes, pedal_track(roll, settings.channels), fps, settings)
    if settings.uses_held_notes:
        frame = np.asarray(roll, dtype=np.float32)[channel_rows(settings.channels, "frame")]
        arr = note_array(notes)
        shapes = note_shapes(frame, arr, fps, settings.silent_below)
        return hold_notes(arr, shapes, frame_tracks(frame), fps, settings.held_notes)
    return notes


def _held_by_pedal(notes: list[Note], track: np.ndarray, fps: float, settings: DecodeSettings) -> list[Note]:
    return sustain_notes(notes, pedal_down_spans(track, fps, settings.pedal_threshold))


def _decode_keys(roll: np.ndarray, fps: float, settings: DecodeSettings) -> list[Note]:
    """The notes of each key's rows (no pedal)."""
    notes = roll_to_notes(roll, fps=fps, threshold=settings.frame_threshold, channels=settings.channels,
                          onset_threshold=settings.onset_threshold,
                          min_frames_without_onset=settings.min_frames_without_onset,
                          min_velocity=settings.min_velocity, offset_threshold=settings.offset_threshold,
                          restrike_threshold=settings.restrike_threshold)
    if settings.min_frames and "onset" not in settings.channels:
        notes = [n for n in notes if round((n.offset - n.onset) * fps) >= settings.min_frames]
    return notes


class NoteStream:
    """Notes of a roll fed in time order, block by block: the notes :func:`decode_roll` reads from
    the whole roll, holding only the frames of notes not yet over (and the notes, compactly: 32
    bytes each, as :func:`note_array` rows).

    Keys are read independently. A frame where a key is silent (frame and onset at or below their
    thresholds) ends any note of that key and starts nothing, so the frames before a key's last
    silent frame are decoded at once and dropped. A key that sounds without a single silent frame
    for more than ``max_pending`` frames (:data:`MAX_PENDING_SECONDS`: a stuck note) is cut there,
    with a warning. With a pedal channel the stream keeps its :func:`~diffroll.core.roll.pedal_track`
    (4 bytes a frame) and holds the notes by it when it closes, as :func:`decode_roll` does; with
    :attr:`DecodeSettings.held_notes` it keeps the :func:`~diffroll.transcription.held_notes.frame_tracks` (8 bytes
    a frame) and each note's :func:`~diffroll.transcription.held_notes.note_shapes`, and guesses when it closes.
    """

    def __init__(self, fps: float, settings: DecodeSettings, max_pending: int | None = None):
        self.fps, self.settings = fps, settings
        self.max_pending = int(MAX_PENDING_SECONDS * fps) if max_pending is None else max_pending
        self.rows = N_KEYS * len(settings.channels)
        self.pending = np.zeros((self.rows, 0), dtype=np.float32)
        self.base = 0  # absolute frame of pending[:, 0]
        self.start = np.zeros(N_KEYS, dtype=np.int64)  # per key: frames before this are decoded
        self.found: list[np.ndarray] = []  # note_array blocks
        self.pedal: list[np.ndarray] = []  # pedal_track blocks (with a pedal channel)
        self.tracks: list[Tracks] = []  # frame_tracks blocks (guessing held notes)
        self.shapes: list[np.ndarray] = []  # note_shapes of the found blocks (guessing held notes)
        self.frames = 0

    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.rows:
            raise ValueError(f"expected blocks of shape ({self.rows}, frames), got {block.shape}")
        self.pending = np.concatenate([self.pending, block], axis=1)
        self.frames += block.shape[1]
        if self.settings.uses_pedal:
            self.pedal.append(pedal_track(block, self.settings.channels))
        if self.settings.uses_held_notes:
            self.tracks.append(frame_tracks(block[channel_rows(self.settings.channels, "frame")]))
        self._flush(final=False)

    def close_array(self) -> np.ndarray:
        """The notes of everything fed as a sorted :func:`note_array` (the stream is then done)."""
        self._flush(final=True)
        arr = np.concatenate(self.found) if self.found else note_array([])
        self.found = []
        if self.settings.uses_pedal:
            track = np.concatenate(self.pedal) if self.pedal else np.zeros(0, dtype=np.float32)
            arr = note_array(_held_by_pedal(array_notes(arr), track, self.fps, self.settings))
            self.pedal = []
        if self.settings.uses_held_notes:
            shapes = np.concatenate(self.shapes) if self.shapes else np.zeros((0, 4), dtype=np.float32)
            arr = note_array(hold_notes(arr, shapes, join_tracks(self.tracks), self.fps, self.settings.held_notes))
            self.tracks, self.shapes = [], []
        return arr[np.lexsort(arr.T[::-1])]

    def close(self) -> list[Note]:
        """The notes of everything fed, sorted (the stream is then done)."""
        return array_notes(self.close_array())

    def _sounding(self, x: np.ndarray) -> np.ndarray:
        ch, s = self.settings.channels, self.settings
        on = x[ch.index("frame")] > s.silent_below
        if "onset" in ch:
            on |= x[ch.index("onset")] > s.onset_threshold
        return on

    def _cuts(self, x: np.ndarray, rel_start: np.ndarray, final: bool) -> np.ndarray:
        """Per key, the relative frame up to which it can be decoded now."""
        n = x.shape[-1]
        if final:
            return np.full(N_KEYS, n, dtype=np.int64)
        silent = ~self._sounding(x)
        last = n - 1 - np.argmax(silent[:, ::-1], axis=1)
        last = np.where(silent.any(axis=1), last, -1)
        cut = np.maximum(last, rel_start)
        stuck = n - cut > self.max_pending
        if stuck.any():
            log.warning("keys %s sound for over %.0f s without a break (a stuck note?): their notes are cut at %.1f s",
                        [int(k) + 21 for k in np.flatnonzero(stuck)], self.max_pending / self.fps,
                        (self.base + n) / self.fps)
            cut[stuck] = n
        return cut

    def _flush(self, final: bool) -> None:
        n = self.pending.shape[1]
        x = self.pending.reshape(len(self.settings.channels), N_KEYS, n)
        rel_start = self.start - self.base
        cut = self._cuts(x, rel_start, final)
        if (cut > rel_start).any():
            idx = np.arange(n)
            active = (idx >= rel_start[:, None]) & (idx < cut[:, None])
            notes = note_array(_decode_keys((x * active[None]).reshape(self.rows, n), self.fps, self.settings))
            if self.settings.uses_held_notes:
                frame = x[self.settings.channels.index("frame")]
                self.shapes.append(note_shapes(frame, notes, self.fps, self.settings.silent_below))
            frames = np.round(notes[:, :2] * self.fps) + self.base  # whole frames: exact times
            notes[:, :2] = frames / self.fps
            self.found.append(notes)
        self.start = self.base + cut
        drop = int(cut.min())
        if drop > 0:
            self.pending = self.pending[:, drop:].copy()
            self.base += drop
