"""Transcription of any-length audio with the sampler of Algorithm 1, streamed window by window.

The official DiffRoll code transcribes one fixed 20.48 s window. Here the audio is cut into
overlapping windows of the training segment length (640 frames for the paper's settings, §4);
each window gets its own c_mel (normalised per window, exactly like a training segment), and the
posteriorgrams are stitched by keeping the central part of each window: window i owns the frames
from the middle of its overlap with window i-1 to the middle of its overlap with window i+1.

Streaming: nothing proportional to the audio's length is held. The audio comes as an
:class:`~diffroll.transcription.audio_stream.AudioStream` (:mod:`diffroll.transcription.audio_stream`: a file read block by
block, mixed to mono and resampled chunk by chunk), and only the samples of the windows being
sampled are kept. Each window's kept frames go, in order, to a :class:`NoteStream`, which reads
notes as soon as they are over and forgets the frames before them, so a note held across a window
edge is neither cut nor doubled. Only the notes are kept (the roll too if asked for). The network
sees ``batch_size`` rolls at a time, and the memory freed after each batch and window is handed
back to the OS (:func:`return_freed_memory`). Measured (``diffroll transcribe --notes-csv``,
bundled model, one thread): 10 hours of piano audio peak at 535 MiB resident, 92 MiB above a
30-second file.

Several samples (``samples`` = K): each window is sampled K times from different x_T, batched
together with the windows; K note streams give K transcriptions (see :mod:`diffroll.transcription.confidence`),
and with ``combine="mean"`` one more stream reads the notes from the mean of the K x̂0, window by
window (beyond the paper: on the validation split the mean of K = 4 DDPM × 5 samples gains 1.2
note F1 and 3.0 note-with-offset F1 over one sample, a majority vote of the four 0.7 and 1.8).

Noise: x_T of sample j is drawn window after window from its own generator (:func:`sample_seed`:
``seed`` itself for sample 0, so the first of K samples is the single transcription of that seed),
and DDPM's per-step noise of each window of each sample from its own generator
(:func:`step_seed`), so every sampler gives the same result for any ``batch_size``.

Silent windows (peak below ``SILENCE_PEAK``) are not sampled at all when transcribing: their roll
is 0. Generation (w = -1) and masked (inpainted) windows are always sampled.

Non-finite input (NaN, ±inf samples) is refused, or replaced by 0, as the audio is read: see
:mod:`diffroll.transcription.audio_stream` (``nonfinite``).

Precision (``precision``, :func:`sampling_precision`): the network may run under bf16 autocast
(the sampler's arithmetic stays fp32). ``auto`` uses it on CUDA and on CPUs with native bf16
(AVX-512 BF16 or AMX), where it is faster; elsewhere fp32.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.audio import MelFrontend, cached_frontend
from .audio_stream import AudioInfo, AudioStream, SampleBuffer, array_audio
from .confidence import array_notes, note_array
from ..core.config import N_KEYS, Config, RollConfig
from ..core.diffusion import mask_mel, model_rows
from .held_notes import HeldNoteModel, Tracks, frame_tracks, hold_notes, join_tracks, note_shapes
from ..core.roll import Note, channel_rows, pedal_down_spans, pedal_track, roll_to_notes, sustain_notes

log = logging.getLogger("diffroll.transcription.inference")

PRECISIONS = ("auto", "fp32", "bf16")
SILENCE_PEAK = 1e-4  # a window whose peak is below this is silence: c_mel = 0, not amplified noise
MAX_PENDING_SECONDS = 600.0  # a key sounding without a break for longer than this is cut there


# --- windows ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Windows:
    """Window starts (frames) and the frames [keep_from, keep_to) each window contributes."""

    starts: list[int]
    keep: list[tuple[int, int]]
    size: int
    total: int


def plan_windows(total_frames: int, size: int, overlap: int) -> Windows:
    """The fewest windows of ``size`` frames that cover ``total_frames`` with neighbours sharing
    at least ``overlap`` frames, spread evenly from frame 0 to the end.

    The last window ends exactly at ``total_frames`` (no padding unless the audio is shorter
    than one window). Each window keeps the frames between the middles of its overlaps, i.e. at
    least ``overlap // 2`` frames away from its own edges (except at the audio's two ends).
    """
    if total_frames <= 0:
        raise ValueError("nothing to transcribe: 0 frames")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    if total_frames <= size:
        starts = [0]
    else:
        n = -(-(total_frames - size) // (size - overlap)) + 1
        starts = [int(s) for s in np.round(np.linspace(0, total_frames - size, n))]
    cuts = [(a + b + size) // 2 for a, b in zip(starts, starts[1:])]  # middle of each overlap
    keep = list(zip([0] + cuts, cuts + [total_frames]))
    return Windows(starts, keep, size, total_frames)


def chunk_mels(chunks: np.ndarray, frontend: MelFrontend) -> torch.Tensor:
    """c_mel (B, n_mels, frames) of equal-length audio chunks (B, samples); silent chunks: 0."""
    device = next(frontend.buffers(), torch.empty(0)).device  # the frontend may live on a GPU
    with torch.no_grad():
        mel = frontend(torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32)).to(device))
    mel[torch.from_numpy(silent_chunks(chunks)).to(mel.device)] = 0.0
    return mel


def window_mels(wave: np.ndarray, starts: list[int], cfg: Config, frontend: MelFrontend) -> torch.Tensor:
    """c_mel of each window (B, n_mels, size), zero-padding audio past the end."""
    hop, size = cfg.audio.hop_length, cfg.audio.segment_frames
    n = size * hop
    chunks = np.zeros((len(starts), n), dtype=np.float32)
    for i, s in enumerate(starts):
        piece = wave[s * hop: s * hop + n]
        chunks[i, :len(piece)] = piece
    return chunk_mels(chunks, frontend)


def silent_chunks(chunks: np.ndarray) -> np.ndarray:
    """(B,) bool: rows of ``chunks`` whose peak is below :data:`SILENCE_PEAK`."""
    return np.abs(chunks).max(axis=1) < SILENCE_PEAK if chunks.shape[1] else np.ones(len(chunks), bool)


def frames_mask(spans: list[tuple[float, float]], total_frames: int, fps: float) -> np.ndarray:
    """(frames,) bool: True in the frames that overlap any (start, end) span in seconds."""
    mask = np.zeros(total_frames, dtype=bool)
    for start, end in spans:
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"mask span {start}:{end} is not finite")
        if end <= start:
            raise ValueError(f"mask span {start}:{end} is empty (end must be after start)")
        mask[max(int(np.floor(start * fps)), 0):max(int(np.ceil(end * fps)), 0)] = True
    return mask


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: CUDA, or a CPU with AVX-512 BF16 / AMX
    (oneDNN's check); elsewhere bf16 autocast is emulated and slower than fp32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_precision(precision: str) -> None:
    """ValueError for a precision not in :data:`PRECISIONS` (sampling's and training's)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")


def sampling_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (the network under autocast) for a ``precision`` of :data:`PRECISIONS`:
    ``auto`` is bf16 where :func:`native_bf16`, else fp32."""
    check_precision(precision)
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def check_sampling(*, batch_size: int = 4, samples: int = 1, w: float | None = None,
                   steps: int | None = None, overlap: int | None = None, size: int | None = None,
                   precision: str = "auto") -> None:
    """ValueError naming the setting for a value that cannot work (instead of an internal error)."""
    check_precision(precision)
    for name, value in (("batch_size", batch_size), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be a whole number >= 1 (or None: all T), got {steps!r}")
    if w is not None and not math.isfinite(w):
        raise ValueError(f"w (the guidance weight) must be a finite number, got {w}")
    if overlap is not None and size is not None and not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}) frames (the window size), got {overlap}")


@torch.no_grad()
def stream_rolls(pipe, audio: AudioStream, *, w: float | None = None, sampler: str = "ddpm",
                 steps: int | None = None, seed: int = 0, batch_size: int = 4, overlap: int | None = None,
                 mask: np.ndarray | None = None, samples: int = 1, progress: bool = True,
                 callback=None, desc: str = "windows", precision: str = "auto"
                 ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Posteriorgrams x0 of ``audio``, stitched and yielded in order as (lo, hi, x0) with x0 of
    shape (samples, R, hi - lo): frames [lo, hi) of each of the K samples. R: the model's rows
    (88 per roll channel); frames = samples of audio // hop. ``pipe``: a
    :class:`diffroll.transcription.pipeline.Pipeline` (its ``model``, ``config`` and ``diffusion``).

    ``w``: guidance weight of Algorithm 1 (None: the config's; -1: generation, §4.3, which
    ignores the audio). ``sampler``/``steps``: see :meth:`diffroll.core.diffusion.Diffusion.sample`.
    ``overlap``: frames shared by neighbouring windows (None: a quarter window). ``mask``
    (frames,) bool marks frames whose c_mel is set to -1 (inpainting, §4.4). ``batch_size``:
    (window, sample) pairs per network call. ``callback`` is passed to the sampler. ``precision``:
    the network's, :func:`sampling_precision` (auto: bf16 where the device has it natively).
    """
    cfg: Config = pipe.config
    model = pipe.model
    hop, size = cfg.audio.hop_length, cfg.audio.segment_frames
    overlap = size // 4 if overlap is None else overlap
    check_sampling(batch_size=batch_size, samples=samples, w=w, steps=steps, overlap=overlap, size=size,
                   precision=precision)
    device = next(model.parameters()).device
    bf16 = sampling_precision(precision, device) == "bf16"
    w = cfg.diffusion.w if w is None else w
    keys, total = model_rows(model), audio.info.samples // hop
    if mask is not None and len(mask) < total:
        raise ValueError(f"mask has {len(mask)} frames, the audio {total}")
    buffer = SampleBuffer(audio.blocks)
    if total == 0:
        buffer.drain()
        return
    plan = plan_windows(total, size, overlap)
    frontend = cached_frontend(cfg.audio, device)
    init_gens = [torch.Generator().manual_seed(sample_seed(seed, j)) for j in range(samples)]  # x_T
    n_pairs = len(plan.starts) * samples
    pending: dict[int, np.ndarray] = {}  # window -> (samples, R, size), filled sample by sample
    bar = tqdm(total=len(plan.starts), desc=desc, unit="window", disable=not progress, leave=False)
    for b in range(0, n_pairs, batch_size):
        pairs = [divmod(p, samples) for p in range(b, min(b + batch_size, n_pairs))]
        x_T = torch.stack([torch.randn((keys, size), generator=init_gens[j]) for _, j in pairs])
        windows = sorted({i for i, _ in pairs})
        chunks = np.stack([buffer.take(plan.starts[i] * hop, (plan.starts[i] + size) * hop) for i in windows])
        mel = chunk_mels(chunks, frontend).to(device)
        masked = np.zeros((len(windows), size), dtype=bool)
        if mask is not None:
            for r, i in enumerate(windows):
                part = mask[plan.starts[i]:plan.starts[i] + size]
                masked[r, :len(part)] = part
            mel = mask_mel(mel, torch.from_numpy(masked).to(device))
        quiet = silent_chunks(chunks)
        row = {i: r for r, i in enumerate(windows)}
        run = [k for k, (i, _) in enumerate(pairs) if w == -1 or masked[row[i]].any() or not quiet[row[i]]]
        x0 = np.zeros((len(pairs), keys, size), dtype=np.float32)
        if run:
            step_gens = [torch.Generator().manual_seed(step_seed(seed, *pairs[k])) for k in run]  # DDPM's noise
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                x0[run] = _sample(pipe, mel[[row[pairs[k][0]] for k in run]], x_T[run].to(device), w, sampler,
                                  steps, step_gens, callback)
        del mel, x_T, chunks
        return_freed_memory()  # the network's and the mel's temporaries
        for k, (i, j) in enumerate(pairs):
            pending.setdefault(i, np.zeros((samples, keys, size), dtype=np.float32))[j] = x0[k]
            if j == samples - 1:
                lo, hi = plan.keep[i]
                s = plan.starts[i]
                yield lo, hi, pending.pop(i)[:, :, lo - s:hi - s]
                return_freed_memory()  # after the caller has used the window
                bar.update(1)
        if b + batch_size < n_pairs:
            buffer.release(plan.starts[(b + batch_size) // samples] * hop)
    bar.close()
    buffer.drain()


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on other C libraries."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    """Give the memory freed since the last call back to the OS (glibc: ``malloc_trim(0)``; else
    nothing). The window loop frees arrays of ever-changing sizes, and glibc keeps such freed
    blocks in its heap: without this the resident memory of an hour's transcription creeps up by
    a hundred MB or more while the memory in use stays flat."""
    if _TRIM is not None:
        _TRIM(0)


def _hashed_seed(*parts: int) -> int:
    """A seed in [0, 2^63) mixed from ``parts`` (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) % 2 ** 63 for p in parts]).generate_state(1, np.uint64)[0] % 2 ** 63)


def sample_seed(seed: int, sample: int) -> int:
    """The seed of sample ``sample``'s x_T generator: ``seed`` itself for sample 0 (so sample 0 of K
    is the single transcription of that seed), a hash of both for the others."""
    return int(seed) if sample == 0 else _hashed_seed(seed, sample)


def step_seed(seed: int, window: int, sample: int) -> int:
    """The seed of DDPM's per-step noise for one window of one sample: its own, so that a result
    does not depend on which windows and samples are batched together."""
    return _hashed_seed(seed, window, sample, 1)


def _sample(pipe, mel: torch.Tensor, x_T: torch.Tensor, w: float, sampler: str, steps: int | None,
            generator: list[torch.Generator], callback) -> np.ndarray:
    """x̂0 of one batch: Algorithm 1, or one pass with x_t = 0, t = 1 for the discriminative
    baseline (§4.1)."""
    model = pipe.model
    if pipe.config.train.mode == "discriminative":
        est = model(torch.zeros_like(x_T), torch.ones(len(x_T), dtype=torch.long, device=x_T.device), mel)
    else:
        est = pipe.diffusion.sample(model, mel, w=w, sampler=sampler, steps=steps, generator=generator,
                                    callback=callback, x_T=x_T)
    return est.float().cpu().numpy()


def transcribe_wave(pipe, wave: np.ndarray, *, w: float | None = None, sampler: str = "ddpm",
                    steps: int | None = None, seed: int = 0, batch_size: int = 4,
                    overlap: int | None = None, mask: np.ndarray | None = None,
                    progress: bool = True, callback=None, desc: str = "windows",
                    nonfinite: str = "error", precision: str = "auto") -> np.ndarray:
    """16 kHz mono audio -> posteriorgram x0 (R, frames) with frames = len(wave) // hop: the
    whole roll of :func:`stream_rolls` (one sample) in memory. Arguments: see there."""
    cfg: Config = pipe.config
    audio = array_audio(wave, cfg.audio.sample_rate, nonfinite)
    out = np.zeros((model_rows(pipe.model), len(wave) // cfg.audio.hop_length), dtype=np.float32)
    for lo, hi, x0 in stream_rolls(pipe, audio, w=w, sampler=sampler, steps=steps, seed=seed, batch_size=batch_size,
                                   overlap=overlap, mask=mask, progress=progress, callback=callback, desc=desc,
                                   precision=precision):
        out[:, lo:hi] = x0[0]
    return out


# --- notes out, as a stream ---------------------------------------------------------------------

@dataclass(frozen=True)
class DecodeSettings:
    """How notes are read from x̂0 (see :func:`diffroll.core.roll.roll_to_notes`).

    ``min_frames_without_onset``: with an onset channel, a frame run that no onset starts becomes
    a note from this many frames (None: never). ``min_frames``: without an onset channel (frame
    rolls), notes shorter than this many frames are dropped (0: none). Both come from one
    user setting, the minimum length of a note read without an onset (:func:`decode_settings`).
    ``offset_threshold`` / ``restrike_threshold`` (note-state rolls; None: the frame / onset
    threshold): how long a started note lasts, and how strong an onset inside it must be to
    re-strike it (:attr:`RollConfig.offset_threshold`, :attr:`RollConfig.restrike_threshold`).
    """

    channels: tuple[str, ...]
    frame_threshold: float
    onset_threshold: float
    min_frames_without_onset: int | None
    min_frames: int = 0
    min_velocity: int = 0  # RollConfig.min_velocity
    offset_threshold: float | None = None
    restrike_threshold: float | None = None
    pedal_threshold: float | None = None  # RollConfig.pedal_threshold (used only with a pedal channel)
    held_notes: HeldNoteModel | None = None  # RollConfig.held_notes (used only without the pedal channel's pedal)

    @property
    def uses_pedal(self) -> bool:
        """Whether decoding holds notes with the roll's pedal channel (:func:`diffroll.core.roll.sustain_notes`)."""
        return "pedal" in self.channels and self.pedal_threshold is not None

    @property
    def uses_held_notes(self) -> bool:
        """Whether decoding guesses the notes a pedal held (:mod:`diffroll.transcription.held_notes`)."""
        return self.held_notes is not None and not self.uses_pedal

    @property
    def silent_below(self) -> float:
        """Frame value at or below which a key's frame keeps no note sounding."""
        return min(self.frame_threshold, self.offset_threshold or self.frame_threshold)


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1 (x̂0 rolls are 0 or 1), got {value!r}")
    return float(value)


def min_note_frames(ms: float, fps: float) -> int:
    """Frames a note needs to last at least ``ms`` milliseconds (0 ms: 0 frames)."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float, np.floating)) or not (math.isfinite(ms) and ms >= 0):
        raise ValueError(f"min_note_ms must be a finite number >= 0, got {ms!r}")
    return int(math.ceil(ms * fps / 1000.0 - 1e-9))


def decode_settings(cfg: Config, frame_threshold: float | None = None, onset_threshold: float | None = None,
                    min_note_ms: float | None = None, min_frames_without_onset: int | None = None,
                    offset_threshold: float | None = None, restrike_threshold: float | None = None,
                    pedal_threshold: float | None = None, use_pedal: bool = True) -> DecodeSettings:
    """The config's decoding settings with overrides, checked (ValueError naming a bad one).
    ``offset_threshold`` / ``restrike_threshold`` / ``pedal_threshold``: None keeps the config's
    (whose None means the frame / onset threshold, and for the pedal: do not use it);
    ``use_pedal=False`` reads the notes without a pedal channel's help, and without the guess of
    pedal-held notes (:attr:`RollConfig.held_notes`, :mod:`diffroll.transcription.held_notes`): each note's end
    from its own frame values only.

    ``min_note_ms``: the minimum length of a note read without an onset. With an onset channel
    (note-state rolls) a frame run that no onset starts becomes a note when it lasts at least
    this long (default: the config's ``min_frames_without_onset``, None = never); without one
    (frame rolls, where no note has an onset) it is the minimum note length (default 0).
    """
    roll_cfg: RollConfig = cfg.roll
    channels = tuple(roll_cfg.roll_channels)
    frame = _check_threshold("frame_threshold", cfg.diffusion.threshold if frame_threshold is None else frame_threshold)
    onset = _check_threshold("onset_threshold", roll_cfg.onset_threshold if onset_threshold is None
                             else onset_threshold)
    if min_note_ms is not None and min_frames_without_onset is not None:
        raise ValueError("give min_note_ms or min_frames_without_onset, not both")
    without = roll_cfg.min_frames_without_onset if min_frames_without_onset is None else min_frames_without_onset
    min_frames = 0
    if min_note_ms is not None:
        frames = min_note_frames(min_note_ms, cfg.audio.fps)
        without, min_frames = (frames, 0) if "onset" in channels else (without, frames)
    if without is not None and (isinstance(without, bool) or not isinstance(without, (int, np.integer)) or without < 0):
        raise ValueError(f"min_frames_without_onset must be a whole number >= 0 or None, got {without!r}")
    loud = roll_cfg.min_velocity
    if isinstance(loud, bool) or not isinstance(loud, (int, np.integer)) or not 0 <= loud <= 127:
        raise ValueError(f"min_velocity must be a whole number in 0..127, got {loud!r}")
    held, restrike, pedal = (None if v is None else _check_threshold(name, v) for name, v in
                             (("offset_threshold", roll_cfg.offset_threshold if offset_threshold is None
                               else offset_threshold),
                              ("restrike_threshold", roll_cfg.restrike_threshold if restrike_threshold is None
                               else restrike_threshold),
                              ("pedal_threshold", None if not use_pedal else roll_cfg.pedal_threshold
                               if pedal_threshold is None else pedal_threshold)))
    pedal = pedal if "pedal" in channels else None  # checked above, but a roll without pedal rows has no use for it
    guess = HeldNoteModel.from_dict(roll_cfg.held_notes) if use_pedal and roll_cfg.held_notes else None
    return DecodeSettings(channels, frame, onset, without, min_frames, int(loud), held, restrike, pedal, guess)


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


COMBINES = ("mean", "vote")  # how K samples become one transcription (RollConfig.combine_samples)


def check_combine(combine: str) -> str:
    """``combine`` itself, or ValueError naming the choices."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)} (how K samples become one "
                         f"transcription), got {combine!r}")
    return combine


@dataclass
class StreamResult:
    """K transcriptions of one audio stream: the notes of each sample (:func:`note_array`), the
    notes read from the mean of the K samples' x̂0 (``combined``; None unless asked for), the
    roll the notes come from (the mean's, else the first sample's; when kept), and what was read."""

    samples: list[np.ndarray]
    roll: np.ndarray | None
    audio: AudioInfo
    combined: np.ndarray | None = None


def transcribe_stream(pipe, audio: AudioStream, settings: DecodeSettings, *, samples: int = 1,
                      keep_roll: bool = False, combine: str = "vote", **kwargs) -> StreamResult:
    """Notes of ``samples`` transcriptions of ``audio`` (:func:`stream_rolls`, its keyword
    arguments), read window by window; with ``combine="mean"`` and K > 1 also the notes of the
    mean of the K x̂0 (one more :class:`NoteStream`, fed window by window like the others). The
    roll (``keep_roll``) is the one ``combined`` is read from, else the first sample's."""
    check_combine(combine)
    fps = pipe.config.audio.fps
    streams = [NoteStream(fps, settings) for _ in range(samples)]
    mean = NoteStream(fps, settings) if combine == "mean" and samples > 1 else None
    total = audio.info.samples // pipe.config.audio.hop_length
    roll = np.zeros((model_rows(pipe.model), total), dtype=np.float32) if keep_roll else None
    for lo, hi, x0 in stream_rolls(pipe, audio, samples=samples, **kwargs):
        for stream, x in zip(streams, x0):
            stream.feed(x)
        x = x0[0]
        if mean is not None:
            x = x0.mean(axis=0)
            mean.feed(x)
        if roll is not None:
            roll[:, lo:hi] = x
    return StreamResult([s.close_array() for s in streams], roll, audio.info,
                        mean.close_array() if mean is not None else None)


def transcribe_notes(pipe, wave: np.ndarray, threshold: float | None = None, **kwargs) -> tuple[list[Note], np.ndarray]:
    """Audio -> (notes, posteriorgram) with the pipeline's roll settings; ``kwargs`` go to
    :func:`transcribe_wave`."""
    x0 = transcribe_wave(pipe, wave, **kwargs)
    cfg: Config = pipe.config
    return decode_roll(x0, cfg.audio.fps, decode_settings(cfg, frame_threshold=threshold)), x0


# Used by `diffroll transcribe` and Pipeline.transcribe, at the checkpoint's w. Five steps: the
# fewest within one point of 200-step DDPM's note F1 (benchmarks/bench_samplers.py, figures/bench.md);
# the paper's stochastic DDPM steps rather than DDIM's: at 5 steps and the same cost, 0.9 points more
# note-with-offset F1 on the VALIDATION split (96 excerpts of 60 s, the bundled w = 0.5 against DDIM at
# w = 1: 0.500 vs 0.491, note F1 0.793 vs 0.791; README, model card). Re-run `make bench` after retraining.
DEFAULT_SAMPLER = "ddpm"
DEFAULT_STEPS = 5


__all__ = ["COMBINES", "DEFAULT_SAMPLER", "DEFAULT_STEPS", "PRECISIONS", "SILENCE_PEAK", "DecodeSettings", "NoteStream",
           "StreamResult", "Windows", "check_combine", "check_precision", "check_sampling", "chunk_mels", "decode_roll",
           "decode_settings", "frames_mask", "min_note_frames", "native_bf16", "plan_windows", "sample_seed",
           "sampling_precision", "step_seed", "stream_rolls", "transcribe_notes", "transcribe_stream",
           "transcribe_wave", "window_mels"]
