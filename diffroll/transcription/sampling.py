"""Sampling any-length audio with Algorithm 1, streamed window by window, into notes.

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

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.audio import cached_frontend
from ..core.diffusion import mask_mel, model_rows
from .audio_stream import AudioInfo, AudioStream, SampleBuffer
from .decoding import NoteStream
from .settings import DecodeSettings, SamplingSettings
from .windows import chunk_mels, plan_windows, silent_chunks


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


def sampling_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` (the network under autocast) for a checked ``precision``
    (:attr:`SamplingSettings.precision`): ``auto`` is bf16 where :func:`native_bf16`, else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@torch.no_grad()
def stream_rolls(pipe, audio: AudioStream, sampling: SamplingSettings, *, mask: np.ndarray | None,
                 progress: bool, callback=None, desc: str = "windows") -> Iterator[tuple[int, int, np.ndarray]]:
    """Posteriorgrams x0 of ``audio``, stitched and yielded in order as (lo, hi, x0) with x0 of
    shape (samples, R, hi - lo): frames [lo, hi) of each of the K samples. R: the model's rows
    (88 per roll channel); frames = samples of audio // hop. ``pipe``: a
    :class:`diffroll.transcription.pipeline.Pipeline` (its ``model``, ``config`` and ``diffusion``).

    ``sampling``: w, sampler, steps, samples, seed, batch size, precision and window overlap
    (:class:`~diffroll.transcription.settings.SamplingSettings`). ``mask`` (frames,) bool marks
    frames whose c_mel is set to -1 (inpainting, §4.4). ``callback`` is passed to the sampler.
    """
    cfg = pipe.config
    model = pipe.model
    hop, size = cfg.audio.hop_length, cfg.audio.segment_frames
    overlap = size // 4 if sampling.overlap is None else sampling.overlap
    if not overlap < size:
        raise ValueError(f"overlap must be in [0, {size}) frames (the window size), got {overlap}")
    w, sampler, steps, seed = sampling.w, sampling.sampler, sampling.steps, sampling.seed
    samples, batch_size = sampling.samples, sampling.batch_size
    device = next(model.parameters()).device
    bf16 = sampling_precision(sampling.precision, device) == "bf16"
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


def piece_seed(seed: int, piece: int) -> int:
    """The seed of piece ``piece`` of a set transcribed one piece at a time (the real notes): its own
    draws, so that the set's score averages over the noise instead of riding on the one x_T that
    ``seed`` gives every piece's first window."""
    return _hashed_seed(seed, piece, 2)


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


@dataclass
class StreamResult:
    """K transcriptions of one audio stream: the notes of each sample (:func:`~diffroll.core.roll.note_array`), the
    notes read from the mean of the K samples' x̂0 (``combined``; None unless asked for), the
    roll the notes come from (the mean's, else the first sample's; when kept), and what was read."""

    samples: list[np.ndarray]
    roll: np.ndarray | None
    audio: AudioInfo
    combined: np.ndarray | None = None


def transcribe_stream(pipe, audio: AudioStream, sampling: SamplingSettings, decoding: DecodeSettings, *,
                      keep_roll: bool, mask: np.ndarray | None, progress: bool, callback=None,
                      desc: str = "windows") -> StreamResult:
    """Notes of ``sampling.samples`` transcriptions of ``audio`` (:func:`stream_rolls`), read window
    by window; with ``combine="mean"`` and K > 1 also the notes of the mean of the K x̂0 (one more
    :class:`NoteStream`, fed window by window like the others). The roll (``keep_roll``) is the one
    ``combined`` is read from, else the first sample's."""
    fps = pipe.config.audio.fps
    streams = [NoteStream(fps, decoding) for _ in range(sampling.samples)]
    mean = NoteStream(fps, decoding) if sampling.combine == "mean" and sampling.samples > 1 else None
    total = audio.info.samples // pipe.config.audio.hop_length
    roll = np.zeros((model_rows(pipe.model), total), dtype=np.float32) if keep_roll else None
    for lo, hi, x0 in stream_rolls(pipe, audio, sampling, mask=mask, progress=progress, callback=callback, desc=desc):
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
