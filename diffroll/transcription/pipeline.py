"""The pipeline: a network, its config and its diffusion, as one object that transcribes,
generates and inpaints (the CLI, the notebooks and the benchmarks all use it).

    pipe = Pipeline.from_checkpoint()              # the bundled model
    result = pipe.transcribe("song.wav")           # notes (with velocities), the posteriorgram
    result.midi().write("song.mid")
    voted = pipe.transcribe("song.wav", samples=4, keep_roll=False)  # mean of 4 samples' x̂0
    voted.write_csv("song.csv")                    # onset_s,offset_s,pitch,velocity,confidence
    dream = pipe.generate(seconds=20.0)            # w = -1: no audio (§4.3)
    fixed = pipe.inpaint("take.flac", [(12, 15)])  # c_mel = -1 in the masked seconds (§4.4)

A model's config travels with it here, never as an attribute attached to the network. The
window machinery (any-length audio, stitching, silence) is :mod:`diffroll.transcription.inference`, reading
audio as a stream :mod:`diffroll.transcription.audio_stream`; the maths is :mod:`diffroll.core.diffusion`.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pretty_midi
import torch

from .audio_stream import AudioInfo, AudioStream, array_audio, open_audio, read_audio, silence_audio
from .confidence import Calibration, array_notes, consensus, note_array, support
from ..core.config import Config
from ..core.diffusion import Diffusion
from .inference import (DEFAULT_SAMPLER, DEFAULT_STEPS, StreamResult, check_sampling, decode_roll,
                        decode_settings, frames_mask, transcribe_stream)
from ..core.keynet import KeySharedDiffRoll
from ..core.model import DiffRoll
from ..core.roll import Note, notes_to_midi

CSV_HEADER = ("onset_s", "offset_s", "pitch", "velocity", "confidence")
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
        return notes_to_midi(self.notes)

    def write_midi(self, path: str | Path) -> Path:
        """The notes as a MIDI file (:func:`write_midi`: the notes of :meth:`midi`, written
        without building a PrettyMIDI, so long transcriptions need little memory)."""
        return write_midi(self.notes, path)

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


@dataclass
class Pipeline:
    """``model`` (any callable ``model(x_t, t, mel) -> x̂0`` with ``rows``; a :class:`DiffRoll`
    normally) with the :class:`Config` it was trained with, and the diffusion of that config."""

    model: torch.nn.Module
    config: Config
    diffusion: Diffusion = field(init=False)

    def __post_init__(self):
        self.diffusion = Diffusion.from_config(self.config.diffusion)

    # -- making one --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Config, device: str | torch.device = "cpu") -> "Pipeline":
        """An untrained network of ``cfg``'s size (rows: 88 per roll channel)."""
        return cls(new_model(cfg).to(device), cfg)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        use_ema: bool = True) -> "Pipeline":
        """A ready (eval-mode) pipeline from a checkpoint; ``path=None``: the bundled model."""
        from ..core.checkpoint import load_pipeline

        return load_pipeline(path, device=device, use_ema=use_ema)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- using it ----------------------------------------------------------------------------
    def decode(self, roll: np.ndarray, threshold: float | None = None, onset_threshold: float | None = None,
               min_frames_without_onset: int | None = None, min_note_ms: float | None = None,
               offset_threshold: float | None = None, restrike_threshold: float | None = None,
               pedal_threshold: float | None = None, use_pedal: bool = True) -> list[Note]:
        """Notes of a whole posteriorgram with the config's roll settings (overridable; see
        :func:`diffroll.transcription.inference.decode_settings`)."""
        settings = decode_settings(self.config, threshold, onset_threshold, min_note_ms, min_frames_without_onset,
                                   offset_threshold, restrike_threshold, pedal_threshold, use_pedal)
        return decode_roll(roll, self.config.audio.fps, settings)

    def transcribe(self, audio: str | Path | np.ndarray | AudioStream, *, samples: int = 1,
                   threshold: float | None = None, frame_threshold: float | None = None,
                   onset_threshold: float | None = None, min_note_ms: float | None = None,
                   min_frames_without_onset: int | None = None, offset_threshold: float | None = None,
                   restrike_threshold: float | None = None, pedal_threshold: float | None = None,
                   use_pedal: bool = True, keep_roll: bool = True, keep_samples: bool = True,
                   nonfinite: str = "error", combine: str | None = None, **kwargs) -> Transcription:
        """Audio (a file: any rate, mono or stereo, streamed; a mono array at the config's rate; or
        an :class:`~diffroll.transcription.audio_stream.AudioStream`) -> :class:`Transcription`.

        ``samples`` = K: K transcriptions from different x_T, batched together; ``combine`` (None:
        the checkpoint's :attr:`~diffroll.core.config.RollConfig.combine_samples`): "mean" reads the
        notes from the mean of their x̂0, "vote" keeps the notes a majority holds; each note's
        confidence is the share of the K samples holding it. ``frame_threshold`` (alias ``threshold``),
        ``onset_threshold``, ``min_note_ms``, ``offset_threshold``, ``restrike_threshold``,
        ``pedal_threshold``, ``use_pedal``: see :func:`diffroll.transcription.inference.decode_settings`.
        ``keep_roll=False`` and ``keep_samples=False`` keep only the notes (memory independent of
        the audio's length but for the notes themselves).
        ``nonfinite``: "error" (refuse NaN / inf samples) or "zero" (replace them by 0, warn).
        Other keyword arguments go to :func:`diffroll.transcription.inference.stream_rolls` (w, sampler, steps,
        seed, batch_size, overlap, mask, progress, callback, desc, precision); the sampler defaults to
        :data:`DEFAULT_SAMPLER`, :data:`DEFAULT_STEPS`. Raises ValueError naming a bad setting.
        """
        frame_threshold = _alias("threshold", threshold, "frame_threshold", frame_threshold)
        settings = decode_settings(self.config, frame_threshold, onset_threshold, min_note_ms, min_frames_without_onset,
                                   offset_threshold, restrike_threshold, pedal_threshold, use_pedal)
        check_sampling(samples=samples, batch_size=kwargs.get("batch_size", 4), w=kwargs.get("w"),
                       steps=kwargs.get("steps"), precision=kwargs.get("precision", "auto"))
        kwargs.setdefault("sampler", DEFAULT_SAMPLER)
        kwargs.setdefault("steps", DEFAULT_STEPS)
        combine = self.config.roll.combine_samples if combine is None else combine  # checked by transcribe_stream
        result = transcribe_stream(self, self.open(audio, nonfinite), settings, samples=samples,
                                   keep_roll=keep_roll, combine=combine, **kwargs)
        calibration = Calibration.of(self.config.roll.confidence_calibration)
        return _combine(result, self.config.audio.fps, keep_samples, calibration)

    def generate(self, seconds: float = 20.48, **kwargs) -> Transcription:
        """Unconditional generation (w = -1, §4.3): a roll sampled with c_mel = -1 everywhere. With
        ``samples`` = K, ``sample_notes`` are K independent generations; ``notes`` combines them as
        a transcription's samples are combined (mean or vote), which for unrelated pieces of music
        means little: use ``sample_notes``."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (0 < seconds < math.inf):
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        sr = self.config.audio.sample_rate
        return self.transcribe(silence_audio(int(round(seconds * sr)), sr), w=-1.0, **kwargs)

    def inpaint(self, audio: str | Path | np.ndarray | AudioStream, spans: Sequence[tuple[float, float]],
                nonfinite: str = "error", **kwargs) -> Transcription:
        """Transcription with c_mel = -1 in the ``spans`` (seconds) of the audio (§4.4)."""
        stream = self.open(audio, nonfinite)
        frames = stream.info.samples // self.config.audio.hop_length
        return self.transcribe(stream, mask=frames_mask(spans, frames, self.config.audio.fps), **kwargs)

    def open(self, audio: str | Path | np.ndarray | AudioStream, nonfinite: str = "error") -> AudioStream:
        """A stream of the audio at the config's rate: a file (read and resampled block by block),
        a mono array at the config's rate, or a stream (returned as it is)."""
        if isinstance(audio, AudioStream):
            return audio
        sr = self.config.audio.sample_rate
        if isinstance(audio, (str, Path)):
            return open_audio(audio, sr=sr, nonfinite=nonfinite)
        return array_audio(audio, sr, nonfinite)

    def load_audio(self, audio: str | Path | np.ndarray) -> np.ndarray:
        """The whole audio in memory: a file (read and resampled, streamed) or a mono array at the
        config's rate."""
        sr = self.config.audio.sample_rate
        if isinstance(audio, (str, Path)):
            return read_audio(audio, sr=sr)
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected a mono 1-D array at {sr} Hz, got shape {wave.shape}")
        return wave

    def label(self) -> str:
        cfg = self.config
        shared = ", keyshared" if cfg.model.architecture == "keyshared" else ""
        return (f"{cfg.scale}{shared}: {cfg.model.layers}×{cfg.model.channels} ch, k={cfg.model.kernel_size}, "
                f"dilation {cfg.model.dilation}, T={cfg.diffusion.T}, roll {'+'.join(cfg.roll.roll_channels)}")


def transcribe(audio: str | Path | np.ndarray, checkpoint: str | Path | None = None,
               pipeline: Pipeline | None = None, device: str | None = None, **kwargs) -> pretty_midi.PrettyMIDI:
    """Audio file (any rate, mono/stereo) or a mono array -> PrettyMIDI with velocities.

    ``pipeline`` wins over ``checkpoint``; neither: the bundled model. Keyword arguments go to
    :meth:`Pipeline.transcribe`. Times in the MIDI are seconds of the audio.
    """
    if pipeline is None:
        pipeline = Pipeline.from_checkpoint(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return pipeline.transcribe(audio, **kwargs).midi()


def default_soundfont() -> str:
    """FluidR3_GM when installed (Debian fluid-soundfont-gm), else TimGM6mb (ships with pretty_midi)."""
    from ..corpus.render import RenderError, soundfont_path

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
    import soundfile as sf

    from ..corpus.render import PianoSynth

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


MIDI_TICKS_PER_BEAT = 960  # at 120 bpm: 1920 ticks a second, about 0.5 ms


def write_midi(notes: Sequence[Note], path: str | Path) -> Path:
    """A Standard MIDI File (format 0) of ``notes`` on one acoustic piano (program 0, track
    "DiffRoll") at 120 bpm with :data:`MIDI_TICKS_PER_BEAT` ticks a beat: times in seconds are
    those of the audio (rounded to a tick), each note keeps its velocity; note-offs come before
    note-ons at the same tick, so a re-struck key sounds again. Events are encoded from arrays,
    a few bytes each, with no MIDI objects per note (:func:`diffroll.core.roll.notes_to_midi` builds a
    PrettyMIDI, about 1 kB a note when written)."""
    arr = note_array(notes)
    ticks_per_s = MIDI_TICKS_PER_BEAT * 2
    on = np.round(arr[:, 0] * ticks_per_s).astype(np.int64)
    off = np.maximum(np.round(arr[:, 1] * ticks_per_s).astype(np.int64), on + 1)
    pitch = arr[:, 2].astype(np.int64)
    vel = np.clip(arr[:, 3], 1, 127).astype(np.int64)
    tick = np.concatenate([off, on])
    kind = np.concatenate([np.zeros(len(arr), np.int64), np.ones(len(arr), np.int64)])  # 0 off, 1 on
    keys = np.concatenate([pitch, pitch])
    vals = np.concatenate([np.zeros(len(arr), np.int64), vel])
    order = np.lexsort((keys, kind, tick))
    delta = np.diff(np.concatenate([[0], tick[order]]))
    track = bytearray(b"\x00\xff\x03\x08DiffRoll" b"\x00\xff\x51\x03\x07\xa1\x20" b"\x00\xc0\x00")
    for d, k, p, v in zip(delta.tolist(), kind[order].tolist(), keys[order].tolist(), vals[order].tolist()):
        track += _varlen(d) + bytes((0x90 if k else 0x80, p, v))
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        MIDI_TICKS_PER_BEAT.to_bytes(2, "big")
    Path(path).write_bytes(header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track))
    return Path(path)


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, the high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _alias(old: str, old_value, new: str, new_value):
    """The value of a setting that has two names (``old`` kept for compatibility)."""
    if old_value is not None and new_value is not None and old_value != new_value:
        raise ValueError(f"{old} and {new} are the same setting: give one (got {old_value} and {new_value})")
    return new_value if new_value is not None else old_value


def _combine(result: StreamResult, fps: float, keep_samples: bool, calibration: Calibration | None = None
          ) -> Transcription:
    """One :class:`Transcription` of K sampled transcriptions: the sample itself when K = 1, else
    the notes of the samples' mean x̂0 (``result.combined``) or of their majority
    (:func:`diffroll.transcription.confidence.consensus`), with their confidence (the share of samples holding
    the note, through ``calibration`` when given)."""
    if len(result.samples) == 1:
        return Transcription(array_notes(result.samples[0]), result.roll, fps, audio=result.audio)
    if result.combined is not None:
        notes = array_notes(result.combined)
        confidence = support(notes, result.samples)
    else:
        notes, confidence = consensus(result.samples)
    if calibration is not None:
        confidence = [float(c) for c in calibration(confidence, len(result.samples))]
    sample_notes = [array_notes(a) for a in result.samples] if keep_samples else None
    return Transcription(notes, result.roll, fps, confidence, sample_notes, result.audio)


def new_model(cfg: Config) -> DiffRoll | KeySharedDiffRoll:
    """The network of ``cfg``: its model settings (``architecture``), 88 rows per roll channel."""
    if cfg.model.architecture == "keyshared":
        return KeySharedDiffRoll(cfg.model, cfg.roll.roll_channels)
    return DiffRoll(cfg.model, cfg.roll.roll_channels)
