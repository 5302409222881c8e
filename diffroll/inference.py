"""Transcription of any-length audio with the sampler of Algorithm 1.

The official DiffRoll code transcribes one fixed 20.48 s window. Here the audio is cut into
overlapping windows of the training segment length (640 frames for the paper's settings, §4);
each window gets its own c_mel (normalised per window, exactly like a training segment), windows
are sampled a batch at a time (so memory stays bounded for any length: the network only ever sees
``batch_size`` windows), and the posteriorgrams are stitched by keeping the central part of each
window: window i owns the frames from the middle of its overlap with window i-1 to the middle of
its overlap with window i+1. Notes are read from the stitched roll, so a note held across a
window edge is neither cut nor doubled.

Noise: x_T of window k is drawn from one generator seeded by ``seed``, window after window, so the
deterministic samplers (ddim, dpmpp) give the same roll for any ``batch_size``. DDPM's per-step
noise is drawn per batch: it is reproducible for a given (seed, batch_size).

Silent windows (peak below ``SILENCE_PEAK``) are not sampled at all when transcribing: their roll
is 0. Generation (w = -1) and masked (inpainted) windows are always sampled.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from tqdm.auto import tqdm

from .audio import AudioError, MelFrontend, load_audio
from .config import Config
from .diffusion import mask_mel, model_rows
from .roll import Note, decode

SILENCE_PEAK = 1e-4  # a window whose peak is below this is silence: c_mel = 0, not amplified noise
READ_BLOCK = 1 << 20  # frames per block when streaming a file from disk


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


def window_mels(wave: np.ndarray, starts: list[int], cfg: Config, frontend: MelFrontend) -> torch.Tensor:
    """c_mel of each window (B, n_mels, size), zero-padding audio past the end."""
    hop, size = cfg.audio.hop_length, cfg.audio.segment_frames
    n = size * hop
    chunks = np.zeros((len(starts), n), dtype=np.float32)
    for i, s in enumerate(starts):
        piece = wave[s * hop: s * hop + n]
        chunks[i, :len(piece)] = piece
    with torch.no_grad():
        mel = frontend(torch.from_numpy(chunks))
    mel[torch.from_numpy(silent_chunks(chunks))] = 0.0
    return mel


def silent_chunks(chunks: np.ndarray) -> np.ndarray:
    """(B,) bool: rows of ``chunks`` whose peak is below :data:`SILENCE_PEAK`."""
    return np.abs(chunks).max(axis=1) < SILENCE_PEAK if chunks.shape[1] else np.ones(len(chunks), bool)


def frames_mask(spans: list[tuple[float, float]], total_frames: int, fps: float) -> np.ndarray:
    """(frames,) bool: True in the frames that overlap any (start, end) span in seconds."""
    mask = np.zeros(total_frames, dtype=bool)
    for start, end in spans:
        if end <= start:
            raise ValueError(f"mask span {start}:{end} is empty (end must be after start)")
        mask[max(int(np.floor(start * fps)), 0):max(int(np.ceil(end * fps)), 0)] = True
    return mask


@torch.no_grad()
def transcribe_wave(pipe, wave: np.ndarray, *, w: float | None = None, sampler: str = "ddpm",
                    steps: int | None = None, seed: int = 0, batch_size: int = 4,
                    overlap: int | None = None, mask: np.ndarray | None = None,
                    progress: bool = True, callback=None, desc: str = "windows") -> np.ndarray:
    """16 kHz mono audio -> posteriorgram x0 (R, frames) with frames = len(wave) // hop and R the
    model's rows (88 per roll channel). ``pipe``: a :class:`diffroll.pipeline.Pipeline` (its
    ``model``, ``config`` and ``diffusion``).

    ``w``: guidance weight of Algorithm 1 (None: the config's; -1: generation, §4.3, which
    ignores the audio). ``sampler``/``steps``: see :meth:`diffroll.diffusion.Diffusion.sample`.
    ``overlap``: frames shared by neighbouring windows (None: a quarter window).
    ``mask`` (frames,) bool marks frames whose c_mel is set to -1 (inpainting, §4.4).
    ``callback`` is passed to the sampler (for a single-window trajectory record).
    """
    cfg: Config = pipe.config
    model, diffusion = pipe.model, pipe.diffusion
    device = next(model.parameters()).device
    w = cfg.diffusion.w if w is None else w
    keys, size = model_rows(model), cfg.audio.segment_frames
    total = len(wave) // cfg.audio.hop_length
    if total == 0:
        return np.zeros((keys, 0), dtype=np.float32)
    if mask is not None and len(mask) < total:
        raise ValueError(f"mask has {len(mask)} frames, the audio {total}")
    plan = plan_windows(total, size, size // 4 if overlap is None else overlap)
    frontend = MelFrontend(cfg.audio).to(device)
    init_gen = torch.Generator().manual_seed(seed)  # x_T, window after window
    step_gen = torch.Generator().manual_seed(seed + 1)  # DDPM's per-step noise
    discriminative = cfg.train.mode == "discriminative"
    out = np.zeros((keys, total), dtype=np.float32)
    bar = tqdm(total=len(plan.starts), desc=desc, unit="window", disable=not progress, leave=False)
    for b in range(0, len(plan.starts), batch_size):
        starts = plan.starts[b:b + batch_size]
        x_T = torch.randn((len(starts), keys, size), generator=init_gen)
        mel = window_mels(wave, starts, cfg, frontend).to(device)
        masked = np.zeros((len(starts), size), dtype=bool)
        if mask is not None:
            for i, s in enumerate(starts):
                part = mask[s:s + size]
                masked[i, :len(part)] = part
            mel = mask_mel(mel, torch.from_numpy(masked).to(device))
        hop = cfg.audio.hop_length
        quiet = [np.abs(wave[s * hop:(s + size) * hop]).max(initial=0.0) < SILENCE_PEAK for s in starts]
        run = [i for i in range(len(starts)) if w == -1 or masked[i].any() or not quiet[i]]
        x0 = np.zeros((len(starts), keys, size), dtype=np.float32)
        if run:
            sel = torch.tensor(run)
            if discriminative:  # §4.1 baseline: one pass with x_t = 0, t = 1
                est = model(torch.zeros(len(run), keys, size, device=device),
                            torch.ones(len(run), dtype=torch.long, device=device), mel[sel])
            else:
                est = diffusion.sample(model, mel[sel], w=w, sampler=sampler, steps=steps,
                                       generator=step_gen, callback=callback, x_T=x_T[sel].to(device))
            x0[run] = est.float().cpu().numpy()
        for i, s in enumerate(starts):
            lo, hi = plan.keep[b + i]
            out[:, lo:hi] = x0[i, :, lo - s:hi - s]
        bar.update(len(starts))
    bar.close()
    return out


def transcribe_notes(pipe, wave: np.ndarray, threshold: float | None = None, **kwargs) -> tuple[list[Note], np.ndarray]:
    """Audio -> (notes, posteriorgram) with the pipeline's roll settings; ``kwargs`` go to
    :func:`transcribe_wave`."""
    x0 = transcribe_wave(pipe, wave, **kwargs)
    cfg: Config = pipe.config
    th = cfg.diffusion.threshold if threshold is None else threshold
    return decode(x0, cfg.audio.fps, cfg.roll, th), x0


def read_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Any file libsndfile reads -> float32 mono at ``sr``, streamed from disk.

    Same result as :func:`diffroll.audio.load_audio` (channels averaged, polyphase resampling),
    but the file is read block by block and resampled in chunks, so an hour of 44.1 kHz stereo
    needs one mono copy at the file's rate rather than several float64 copies of the whole.
    A file with 0 samples gives an empty array (the caller decides what that means).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        with sf.SoundFile(str(path)) as f:
            file_sr, frames = f.samplerate, f.frames
            mono = np.zeros(max(frames, 0), dtype=np.float32)
            pos = 0
            for block in f.blocks(blocksize=READ_BLOCK, dtype="float32", always_2d=True):
                n = min(len(block), len(mono) - pos)
                mono[pos:pos + n] = block[:n].mean(axis=1)
                pos += n
            mono = mono[:pos]
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    return resample_chunked(mono, file_sr, sr)


def resample_chunked(wave: np.ndarray, from_sr: int, to_sr: int, chunk_seconds: float = 30.0) -> np.ndarray:
    """``scipy.signal.resample_poly`` of the whole signal, computed chunk by chunk.

    Chunks start on multiples of ``down`` input samples (so they map to whole output samples)
    and carry ``pad`` samples of context on each side, more than the filter's half-length,
    which is trimmed: inside the signal the result equals the one-shot resampling.
    """
    if from_sr == to_sr:
        return np.ascontiguousarray(wave, dtype=np.float32)
    g = gcd(int(from_sr), int(to_sr))
    up, down = to_sr // g, from_sr // g
    n_out = -(-len(wave) * up // down)  # ceil, as resample_poly
    step = max(int(chunk_seconds * from_sr) // down, 1) * down
    if len(wave) <= 2 * step:
        return resample_poly(wave, up, down).astype(np.float32)
    half = 10 * max(up, down)  # resample_poly's default filter half-length, at the upsampled rate
    pad = (half // up + 2 + down) // down * down  # input samples of context, a multiple of down
    out = np.empty(n_out, dtype=np.float32)
    for i0 in range(0, len(wave), step):
        lo, hi = max(i0 - pad, 0), min(i0 + step + pad, len(wave))
        y = resample_poly(wave[lo:hi], up, down)
        o0, o1 = i0 * up // down, min((i0 + step) * up // down, n_out)
        skip = (i0 - lo) * up // down
        out[o0:o1] = y[skip:skip + o1 - o0]
    return out


# Chosen by benchmarks/bench_samplers.py (figures/bench.md): the fastest setting of at least 5 steps
# whose note F1 is within one point of 200-step DDPM, at a real-time factor <= 0.1 on 2 CPU cores.
# Used by `diffroll transcribe` and Pipeline.transcribe; re-run `make bench` after retraining.
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 5


__all__ = ["DEFAULT_SAMPLER", "DEFAULT_STEPS", "SILENCE_PEAK", "Windows", "frames_mask", "load_audio", "plan_windows",
           "read_audio", "resample_chunked", "transcribe_notes", "transcribe_wave", "window_mels"]
