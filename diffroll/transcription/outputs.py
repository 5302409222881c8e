"""What a transcription gives: notes with confidences, the roll they were read from, and the
files made of them (MIDI by pretty_midi, CSV, a FluidSynth rendering to listen to)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pretty_midi
import soundfile as sf

from ..core.roll import Note, notes_to_midi
from .audio_stream import AudioInfo

CSV_HEADER = ("onset_s", "offset_s", "pitch", "velocity", "confidence")
MIDI_TICKS_PER_BEAT = 960  # at 120 bpm: 1920 ticks a second, about 0.5 ms
SONIFY_RATE = 44100
SONIFY_SEGMENT_SECONDS = 60.0
SONIFY_SOUNDFONTS = ("FluidR3_GM", "TimGM6mb")  # the default: the first one installed


@dataclass
class Transcription:
    """Notes read from a posteriorgram, each with its confidence.

    With ``samples`` = K > 1 the notes are read from the mean of the K samples' x̂0 (``combine=
    "mean"``) or are those found by a majority of the K transcriptions (``"vote"``), and
    ``confidence`` holds, per note, the share of the K samples holding it (same pitch, onset within
    50 ms; :mod:`diffroll.transcription.confidence`) — or, for a checkpoint with a
    :attr:`~diffroll.core.config.RollConfig.confidence_calibration`, the probability that the note is
    right that this share gives (:class:`~diffroll.transcription.confidence.Calibration`); ``sample_notes`` are
    the K transcriptions themselves. With K = 1 every confidence is 1.0. ``roll``: x̂0 (R, frames),
    R = 88 per roll channel, the notes are read from (the mean's, or the first sample's when voting);
    None when not kept (long audio). ``audio``: what was read (length, peak, NaN).
    """

    notes: list[Note]
    roll: np.ndarray | None
    fps: float
    confidence: list[float] | None = None
    sample_notes: list[list[Note]] | None = None
    audio: AudioInfo | None = None

    def __post_init__(self):
        if self.confidence is None:
            self.confidence = [1.0] * len(self.notes)
        if len(self.confidence) != len(self.notes):
            raise ValueError(f"{len(self.notes)} notes but {len(self.confidence)} confidences")

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The notes on one acoustic piano (program 0, track "DiffRoll") at 120 bpm with
        :data:`MIDI_TICKS_PER_BEAT` ticks a beat: times in seconds are those of the audio (rounded
        to a tick, about 0.5 ms, when written); each note keeps its velocity."""
        return notes_to_midi(self.notes, resolution=MIDI_TICKS_PER_BEAT)

    def write_midi(self, path: str | Path) -> Path:
        """The notes as a Standard MIDI File (:meth:`midi`, written by pretty_midi; note-offs
        come before note-ons at the same tick, so a re-struck key sounds again)."""
        self.midi().write(str(path))
        return Path(path)

    def csv_rows(self) -> Iterator[tuple[float, float, int, int, float]]:
        """(onset_s, offset_s, pitch, velocity, confidence) per note, times and confidences
        rounded to 4 decimals (0.1 ms)."""
        for n, c in zip(self.notes, self.confidence):
            yield round(n.onset, 4), round(n.offset, 4), int(n.pitch), int(n.velocity), round(float(c), 4)

    def write_csv(self, path: str | Path) -> Path:
        """One row a note under the header :data:`CSV_HEADER`, e.g. ``0.512,1.024,60,72,0.75``."""
        path = Path(path)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_HEADER)
            writer.writerows(self.csv_rows())
        return path

    def sonify(self, path: str | Path, soundfont: str | None = None, sample_rate: int = SONIFY_RATE) -> Path:
        """The notes played on a FluidSynth piano into a 16-bit WAV file, as long as the audio;
        see :func:`sonify`."""
        seconds = self.audio.seconds if self.audio is not None else 0.0
        return sonify(self.notes, path, soundfont, sample_rate, seconds=seconds)


def default_soundfont() -> str:
    """FluidR3_GM when installed (Debian fluid-soundfont-gm), else TimGM6mb (ships with pretty_midi)."""
    from ..corpus.render import RenderError, soundfont_path  # (see sonify: imported where used)

    for name in SONIFY_SOUNDFONTS[:-1]:
        try:
            soundfont_path(name)
            return name
        except RenderError:
            continue
    return SONIFY_SOUNDFONTS[-1]


def sonify(notes: Sequence[Note], path: str | Path, soundfont: str | None = None, sample_rate: int = SONIFY_RATE,
           seconds: float = 0.0, segment_seconds: float = SONIFY_SEGMENT_SECONDS) -> Path:
    """Play ``notes`` on one FluidSynth piano (``soundfont``: a name of
    :data:`diffroll.corpus.render.SOUNDFONTS` or a .sf2/.sf3 path; None: :func:`default_soundfont`) into
    a mono 16-bit WAV file lasting at least ``seconds``.

    The notes are rendered ``segment_seconds`` of onsets at a time and the segments added where
    they overlap (FluidSynth mixes voices by addition), so memory is bounded by a segment and the
    longest note, not by the length of the music. Raises :class:`diffroll.corpus.render.RenderError`
    when FluidSynth or the soundfont is missing.
    """
    from ..corpus.render import PianoSynth  # FluidSynth and pedalboard: ~0.2 s of start-up only --sonify needs

    synth = PianoSynth(soundfont or default_soundfont(), sample_rate)
    notes = sorted(Note(*n) for n in notes)
    acc, acc_start = np.zeros(0, dtype=np.float32), 0  # samples not yet final, from acc_start
    try:
        with sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV") as out:
            i = 0
            while i < len(notes):
                t0 = notes[i].onset // segment_seconds * segment_seconds
                j = i
                while j < len(notes) and notes[j].onset < t0 + segment_seconds:
                    j += 1
                audio = synth.render(notes_to_midi([n._replace(onset=n.onset - t0, offset=n.offset - t0)
                                                    for n in notes[i:j]]))
                start = int(round(t0 * sample_rate))
                acc, acc_start = _write_until(out, acc, acc_start, start)
                if len(acc) < len(audio):
                    acc = np.concatenate([acc, np.zeros(len(audio) - len(acc), dtype=np.float32)])
                acc[:len(audio)] += audio
                i = j
            end = max(acc_start + len(acc), int(round(seconds * sample_rate)))
            _write_until(out, acc, acc_start, end)
    finally:
        synth.close()
    return Path(path)


def _write_until(out, acc: np.ndarray, acc_start: int, upto: int) -> tuple[np.ndarray, int]:
    """Write the samples [acc_start, upto) (``acc``, then silence) and return what remains."""
    n = upto - acc_start
    if n <= 0:
        return acc, acc_start
    out.write(np.clip(acc[:n], -1.0, 1.0))
    for k in range(len(acc[:n]), n, 1 << 20):  # a gap in the music: silence, block by block
        out.write(np.zeros(min(1 << 20, n - k), dtype=np.float32))
    return acc[n:].copy(), upto
