"""Audio in, as a stream: any file libsndfile reads, mono at the model's rate, block by block.

Streaming from disk: nothing proportional to the audio's length is held. A file is read block by
block (soundfile, :data:`READ_BLOCK` frames), mixed to mono and resampled chunk by chunk
(:func:`resample_chunked`'s arithmetic, :data:`RESAMPLE_CHUNK_SECONDS` a chunk), and handed on in
order as an :class:`AudioStream`, to be consumed once (by :func:`diffroll.transcription.sampling.stream_rolls`,
which keeps only the samples of the windows being sampled).

Non-finite input: NaN or ±inf samples would silently wipe every window they fall in (the mel and
the network turn them into NaN, and NaN is never above a threshold). By default
(``nonfinite="error"``) such audio is refused with a :class:`NonFiniteAudioError` naming the file,
how many samples are bad and where the first and the last are (seconds and sample index);
``nonfinite="zero"`` replaces them by 0 (a click of silence) and logs a warning with the same
details (:attr:`AudioInfo.nonfinite`).

Truncated files: the length in the header is checked against what decodes. A WAV or AIFF whose
data chunk is longer than the file (libsndfile's log: ``data : 396800 (should be 132237)``) and a
compressed file (MP3, FLAC...) whose audio ends before the header's length are refused with a
:class:`TruncatedAudioError` naming how much is missing (``truncated="error"``, before any work when
a seek near the end shows it, else when the reader reaches the end); ``truncated="warn"``
transcribes what decodes (the missing end as silence) and logs a warning saying how much is missing.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..core.audio import AudioError

log = logging.getLogger("diffroll.transcription.audio_stream")

READ_BLOCK = 1 << 16  # frames per block when streaming a file from disk (4 s at 16 kHz: a small, constant buffer)
RESAMPLE_CHUNK_SECONDS = 30.0
NONFINITE_POLICIES = ("error", "zero")
TRUNCATED_POLICIES = ("error", "warn")
TRUNCATION_TOLERANCE = 0.1  # seconds: a file whose audio ends this little before its header's length is not truncated


class NonFiniteAudioError(AudioError):
    """Audio with NaN or infinite samples (refused unless ``nonfinite="zero"``)."""


class TruncatedAudioError(AudioError):
    """Audio that ends before the length its header says (refused unless ``truncated="warn"``)."""


# --- audio in, as a stream ----------------------------------------------------------------------

@dataclass
class AudioInfo:
    """What was read: the source's name and rate, the model's rate ``sr`` and the length there,
    its peak and the NaN / ±inf samples found (their count, the first and the last: sample
    indices of the source, one per frame of all channels)."""

    name: str
    rate: int
    sr: int
    samples: int
    peak: float = 0.0
    nonfinite: int = 0
    first_bad: int | None = None
    last_bad: int | None = None
    header_frames: int = 0  # source frames the header says
    missing: int = 0  # of them, frames that do not decode (a truncated file)

    @property
    def seconds(self) -> float:
        return self.samples / self.sr

    def bad_summary(self) -> str:
        """E.g. ``3 samples are NaN or infinite, from 1.000 s (sample 16000) to 3.000 s (sample 48000)``."""
        n, first, last = self.nonfinite, self.first_bad, self.last_bad
        where = (f"at {first / self.rate:.3f} s (sample {first})" if first == last else
                 f"from {first / self.rate:.3f} s (sample {first}) to {last / self.rate:.3f} s (sample {last})")
        return f"{n} sample{'s' if n != 1 else ''} {'are' if n != 1 else 'is'} NaN or infinite, {where}"


@dataclass
class AudioStream:
    """Mono float32 blocks at the model's rate, in order, to be consumed once; ``info.samples``
    is known before reading (the file header), ``info.peak`` and ``info.nonfinite`` fill in as
    the blocks are read."""

    info: AudioInfo
    blocks: Iterator[np.ndarray]


def _check_policy(nonfinite: str, truncated: str = "error") -> None:
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    if truncated not in TRUNCATED_POLICIES:
        raise ValueError(f"truncated must be one of {TRUNCATED_POLICIES}, got {truncated!r}")


def _truncation(info: AudioInfo) -> str:
    """E.g. ``truncated: its header says 12.400 s, 4.132 s decode (8.268 s missing)``."""
    h, m = info.header_frames, info.missing
    return (f"truncated: its header says {h / info.rate:.3f} s ({h} frames), {(h - m) / info.rate:.3f} s decode "
            f"({m / info.rate:.3f} s missing)")


def _truncated(info: AudioInfo, truncated: str) -> None:
    """Refuse (``truncated="error"``) or warn about audio missing its end."""
    if truncated == "error":
        raise TruncatedAudioError(f"{info.name}: {_truncation(info)}; refusing to transcribe part of a file: repair "
                                  "or re-export it, or transcribe what decodes with --truncated warn "
                                  "(API: truncated='warn')")
    log.warning("%s: %s; transcribed what decodes, the rest as silence", info.name, _truncation(info))


def _declared_frames(head) -> int | None:
    """The frames a WAV / AIFF header declares when its data chunk is longer than the file
    (libsndfile, which reads only what is there, logs ``data : 396800 (should be 132237)``)."""
    m = re.search(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", head.extra_info, re.M)
    if m is None or int(m[1]) in (0, 0xFFFFFFFF, 0x7FFFF000):  # 0 and these: written as a stream, size unknown
        return None
    said, there = int(m[1]), int(m[2])
    return said // (there // head.frames) if said > there >= head.frames > 0 else None


def _ogg_ends_stream(path: Path, tail: int = 1 << 16) -> bool:
    """Whether an Ogg file's last page is flagged end-of-stream (RFC 3533, §6: header_type bit
    0x04). An Ogg file has no length in a header: cut short, it reads as a shorter file, and
    only the missing end-of-stream page shows it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - tail))
        data = f.read()
    last = data.rfind(b"OggS")
    return last >= 0 and last + 5 < len(data) and bool(data[last + 5] & 0x04)


@contextmanager
def _decoder_quiet():
    """The C library's stderr to /dev/null meanwhile: libmpg123, inside libsndfile, prints its
    complaints about a damaged MP3 there ("part2_3_length too large", "Xing stream size off")
    around the one-line message that says what is wrong with the file."""
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no fd 2 (embedded): leave it
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _read(f: sf.SoundFile, frames: int) -> np.ndarray:
    with _decoder_quiet():
        return f.read(frames, dtype="float32", always_2d=True)


def _open(path: Path) -> sf.SoundFile:
    with _decoder_quiet():
        return sf.SoundFile(_os_path(path))


def _ends_early(path: Path, frames: int, tolerance: int) -> bool:
    """Whether the audio ends more than ``tolerance`` frames before ``frames`` (a seek near the end)."""
    if frames <= tolerance:
        return False
    try:
        with _open(path) as f:
            with _decoder_quiet():
                f.seek(frames - tolerance - 1)
            return len(_read(f, 1)) == 0
    except Exception:  # a failed seek is a failed read: the reader names it
        return False


def _front_to_back(f: sf.SoundFile) -> sf.SoundFile:
    """``f``, read from its start to its end without a seek after every read: soundfile seeks a
    seekable file to where each read ended, and libsndfile's MP3 seek is approximate (mpg123's),
    which put a burst of wrong samples (0.1 s, up to a third of full scale) after every block of a
    long MP3. soundfile has no public switch for this: it reads a file it was told is not seekable
    so."""
    f._info.seekable = sf._snd.SF_FALSE
    return f


def _decoded_frames(path: Path) -> int:
    """Frames that really decode, read to the end."""
    n = 0
    with _front_to_back(_open(path)) as f:
        while len(block := _read(f, READ_BLOCK)):
            n += len(block)
    return n


def _os_path(path: Path) -> bytes:
    """The path as the OS's bytes: libsndfile opens any file name, UTF-8 or not."""
    return os.fsencode(path)


def _record_bad(info: AudioInfo, bad_rows: np.ndarray, offset: int) -> None:
    """Count the bad frames of a block starting at source frame ``offset``; remember the first and last."""
    idx = np.flatnonzero(bad_rows)
    info.nonfinite += len(idx)
    if info.first_bad is None:
        info.first_bad = offset + int(idx[0])
    info.last_bad = offset + int(idx[-1])


def _bad_audio_error(info: AudioInfo) -> NonFiniteAudioError:
    return NonFiniteAudioError(f"{info.name}: {info.bad_summary()}; refusing to transcribe corrupt audio: repair "
                               "the file, or replace them by 0 with --nonfinite zero (API: nonfinite='zero')")


def _warn_repaired(info: AudioInfo) -> None:
    if info.nonfinite:
        log.warning("%s: %s; replaced them by 0", info.name, info.bad_summary())


def _file_blocks(path: Path, info: AudioInfo, nonfinite: str, truncated: str = "error", frames: int = 0,
                 tolerance: int = 0) -> Iterator[np.ndarray]:
    """Mono blocks at the file's rate; bad samples counted, then refused or zeroed; a file that
    decodes fewer than ``frames`` frames (beyond ``tolerance``) refused or warned about."""
    try:
        with _front_to_back(_open(path)) as f:
            pos = 0
            # f.read, not f.blocks: blocks() hands on its whole buffer when a decoder stops early
            while len(raw := _read(f, READ_BLOCK)):
                bad = ~np.isfinite(raw)
                if bad.any():
                    _record_bad(info, bad.any(axis=1), pos)
                    raw = np.where(bad, np.float32(0), raw)
                pos += len(raw)
                if not (info.nonfinite and nonfinite == "error"):  # refusing: only count the rest
                    yield raw.mean(axis=1)
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    if info.nonfinite and nonfinite == "error":
        raise _bad_audio_error(info)
    _warn_repaired(info)
    if frames - pos > tolerance:
        info.missing = info.header_frames - pos
        _truncated(info, truncated)


def _tracked(blocks: Iterator[np.ndarray], info: AudioInfo) -> Iterator[np.ndarray]:
    for b in blocks:
        if len(b):
            info.peak = max(info.peak, float(np.abs(b).max()))
        yield b


def open_audio(path: str | Path, sr: int = 16000, nonfinite: str = "error", truncated: str = "error") -> AudioStream:
    """A stream of any file libsndfile reads, as float32 mono at ``sr`` (channels averaged,
    polyphase resampling as :func:`resample_chunked`). ``nonfinite`` and ``truncated``: see the
    module docstring. Raises :class:`~diffroll.core.audio.AudioError` naming the file when it is
    missing, unreadable (while reading, too) or truncated."""
    _check_policy(nonfinite, truncated)
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        with _decoder_quiet():
            head = sf.info(_os_path(path), verbose=True)
    except Exception as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    file_sr, frames = int(head.samplerate), max(int(head.frames), 0)
    info = AudioInfo(str(path), file_sr, sr, resampled_length(frames, file_sr, sr), header_frames=frames)
    tolerance = int(TRUNCATION_TOLERANCE * file_sr)
    declared = _declared_frames(head)
    if declared is not None and declared - frames > tolerance:  # libsndfile reads only what is there
        info.header_frames, info.missing = declared, declared - frames
        _truncated(info, truncated)
    elif truncated == "error" and _ends_early(path, frames, tolerance):  # before any work
        info.missing = frames - _decoded_frames(path)
        _truncated(info, truncated)
    elif head.format == "OGG" and not _ogg_ends_stream(path):
        if truncated == "error":
            raise TruncatedAudioError(f"{path}: truncated: its last Ogg page does not end the stream "
                                      f"({frames / file_sr:.3f} s decode, the rest is missing); refusing to transcribe "
                                      "part of a file: repair or re-export it, or transcribe what decodes with "
                                      "--truncated warn (API: truncated='warn')")
        log.warning("%s: truncated: its last Ogg page does not end the stream; transcribed what decodes (%.3f s)",
                    path, frames / file_sr)
    blocks = _resampled(_file_blocks(path, info, nonfinite, truncated, frames, tolerance), frames, file_sr, sr)
    return AudioStream(info, _tracked(blocks, info))


def array_audio(wave: np.ndarray, sr: int = 16000, nonfinite: str = "error", name: str = "<array>") -> AudioStream:
    """A stream over a mono array already at ``sr`` (checked for NaN / inf as a file is)."""
    _check_policy(nonfinite)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono 1-D array at {sr} Hz, got shape {wave.shape}")
    info = AudioInfo(name, sr, sr, len(wave))
    bad = ~np.isfinite(wave)
    if bad.any():
        _record_bad(info, bad, 0)
        if nonfinite == "error":
            raise _bad_audio_error(info)
        wave = np.where(bad, np.float32(0), wave)
        _warn_repaired(info)
    return AudioStream(info, _tracked(iter([wave]), info))


def silence_audio(samples: int, sr: int = 16000) -> AudioStream:
    """``samples`` zeros, made block by block (generation: no audio, any length)."""
    def blocks():
        for start in range(0, samples, READ_BLOCK):
            yield np.zeros(min(READ_BLOCK, samples - start), dtype=np.float32)
    return AudioStream(AudioInfo("<silence>", sr, sr, samples), blocks())


def read_audio(path: str | Path, sr: int = 16000, nonfinite: str = "error") -> np.ndarray:
    """Any file libsndfile reads -> float32 mono at ``sr``, streamed from disk: the whole of
    :func:`open_audio`'s stream (same samples as :func:`diffroll.core.audio.load_audio`, which reads
    the file at once). A file with 0 samples gives an empty array (the caller decides)."""
    parts = list(open_audio(path, sr, nonfinite).blocks)
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


# --- resampling, chunk by chunk -----------------------------------------------------------------

def _ratio(from_sr: int, to_sr: int) -> tuple[int, int]:
    g = gcd(int(from_sr), int(to_sr))
    return to_sr // g, from_sr // g


def resampled_length(n: int, from_sr: int, to_sr: int) -> int:
    """Samples at ``to_sr`` of ``n`` samples at ``from_sr`` (ceil, as resample_poly)."""
    up, down = _ratio(from_sr, to_sr)
    return -(-n * up // down)


def _chunking(from_sr: int, to_sr: int, chunk_seconds: float) -> tuple[int, int, int, int]:
    """(up, down, step, pad): chunks of ``step`` input samples (a multiple of ``down``, so they map
    to whole output samples) read with ``pad`` samples of context on each side, more than the
    filter's half-length."""
    up, down = _ratio(from_sr, to_sr)
    step = max(int(chunk_seconds * from_sr) // down, 1) * down
    half = 10 * max(up, down)  # resample_poly's default filter half-length, at the upsampled rate
    pad = (half // up + 2 + down) // down * down  # input samples of context, a multiple of down
    return up, down, step, pad


def resample_chunked(wave: np.ndarray, from_sr: int, to_sr: int, chunk_seconds: float | None = None) -> np.ndarray:
    """``scipy.signal.resample_poly`` of the whole signal, computed chunk by chunk.

    Chunks start on multiples of ``down`` input samples and carry ``pad`` samples of context on
    each side, which is trimmed: inside the signal the result equals the one-shot resampling.
    """
    parts = list(_resampled(iter([np.asarray(wave)]), len(wave), from_sr, to_sr, chunk_seconds))
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def _resampled(blocks: Iterator[np.ndarray], n_in: int, from_sr: int, to_sr: int,
               chunk_seconds: float | None = None) -> Iterator[np.ndarray]:
    """The blocks (``n_in`` samples in all, as the header says) resampled chunk by chunk
    (``chunk_seconds``, default :data:`RESAMPLE_CHUNK_SECONDS`), yielded in order; only a chunk and
    its context are held. Blocks past ``n_in`` are read and ignored; a stream that ends early is
    resampled as if it were ``n_in`` long with zeros."""
    if from_sr == to_sr:
        for b in blocks:
            yield np.ascontiguousarray(b, dtype=np.float32)
        return
    up, down, step, pad = _chunking(from_sr, to_sr, chunk_seconds or RESAMPLE_CHUNK_SECONDS)
    buf = SampleBuffer(blocks)
    if n_in <= 2 * step:
        yield resample_poly(buf.take(0, n_in), up, down).astype(np.float32)
        buf.drain()
        return
    n_out = resampled_length(n_in, from_sr, to_sr)
    for i0 in range(0, n_in, step):
        lo, hi = max(i0 - pad, 0), min(i0 + step + pad, n_in)
        y = resample_poly(buf.take(lo, hi), up, down)
        o0, o1 = i0 * up // down, min((i0 + step) * up // down, n_out)
        skip = (i0 - lo) * up // down
        yield y[skip:skip + o1 - o0].astype(np.float32)
        buf.release(i0 + step - pad)
    buf.drain()


class SampleBuffer:
    """Samples of a block stream by absolute index, read on demand and forgotten once released:
    ``take(lo, hi)`` (zero-padded past the end) with ``lo`` never below the last ``release``."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks = blocks
        self.data = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute index of data[0]
        self.ended = False

    def _fill(self, hi: int) -> None:
        parts = [self.data]
        have = self.start + len(self.data)
        while have < hi and not self.ended:
            try:
                b = next(self.blocks)
            except StopIteration:
                self.ended = True
                break
            parts.append(np.asarray(b, dtype=np.float32))
            have += len(b)
        if len(parts) > 1:
            self.data = np.concatenate(parts)

    def take(self, lo: int, hi: int) -> np.ndarray:
        if lo < self.start:
            raise RuntimeError(f"samples from {lo} were already released (buffer starts at {self.start})")
        self._fill(hi)
        out = np.zeros(max(hi - lo, 0), dtype=np.float32)
        part = self.data[lo - self.start: hi - self.start]
        out[:len(part)] = part
        return out

    def release(self, lo: int) -> None:
        if lo > self.start:
            self.data = self.data[lo - self.start:].copy()
            self.start = lo

    def drain(self) -> None:
        """Read (and drop) the rest of the stream: its checks (NaN, read errors) still run."""
        for _ in self.blocks:
            pass
        self.ended = True
        self.data = np.zeros(0, dtype=np.float32)


__all__ = ["NONFINITE_POLICIES", "TRUNCATED_POLICIES", "AudioInfo", "AudioStream", "NonFiniteAudioError",
           "TruncatedAudioError", "SampleBuffer", "array_audio",
           "open_audio", "read_audio", "resample_chunked", "resampled_length", "silence_audio"]
