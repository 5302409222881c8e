"""Windows over any-length audio (§4's 640-frame training segments): where they start, which
frames each keeps when the posteriorgrams are stitched, each window's c_mel, silence, and the
frames an inpainting mask covers (§4.4).

The official DiffRoll code transcribes one fixed 20.48 s window. Here the audio is cut into
overlapping windows of the training segment length; each window gets its own c_mel (normalised
per window, exactly like a training segment), and window i owns the frames from the middle of its
overlap with window i-1 to the middle of its overlap with window i+1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.audio import MelFrontend
from ..core.config import Config

SILENCE_PEAK = 1e-4  # a window whose peak is below this is silence: c_mel = 0, not amplified noise


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
