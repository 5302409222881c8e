"""Transcription of any-length audio with the sampler of Algorithm 1.

The audio is cut into overlapping windows of the training segment length; each window gets its
own c_mel (normalised per window, exactly like a training segment), windows are sampled in
batches (so memory stays bounded for any length), and the posteriorgrams are stitched by keeping
the central part of each window. Notes are read from the stitched roll, so a note held across a
window edge is neither cut nor doubled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch
from tqdm.auto import tqdm

from .audio import MelFrontend, load_audio
from .config import Config
from .diffusion import Diffusion, mask_mel
from .roll import Note, notes_to_midi, roll_to_notes

SILENCE_PEAK = 1e-4  # a window whose peak is below this is silence: c_mel = 0, not amplified noise


@dataclass(frozen=True)
class Windows:
    """Window starts (frames) and the frames [keep_from, keep_to) each window contributes."""

    starts: list[int]
    keep: list[tuple[int, int]]
    size: int
    total: int


def plan_windows(total_frames: int, size: int, overlap: int) -> Windows:
    """Windows of ``size`` frames every ``size - overlap`` frames; each keeps its central part."""
    if total_frames <= 0:
        raise ValueError("nothing to transcribe: 0 frames")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    hop = size - overlap
    starts = [0]
    while starts[-1] + size < total_frames:
        starts.append(starts[-1] + hop)
    keep = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else s + overlap // 2
        hi = total_frames if i == len(starts) - 1 else starts[i + 1] + overlap // 2
        keep.append((lo, min(hi, total_frames)))
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
    silent = torch.from_numpy(np.abs(chunks).max(axis=1) < SILENCE_PEAK)
    mel[silent] = 0.0
    return mel


@torch.no_grad()
def transcribe_wave(model, wave: np.ndarray, *, w: float | None = None, sampler: str = "ddpm",
                    steps: int | None = None, seed: int = 0, batch_size: int = 4,
                    overlap: int | None = None, mask: np.ndarray | None = None,
                    progress: bool = True, callback=None) -> np.ndarray:
    """16 kHz mono audio -> posteriorgram x0 (88, frames) with frames = len(wave) // hop.

    ``mask`` (frames,) bool marks frames whose c_mel is set to -1 (inpainting, §4.4).
    ``callback`` is passed to the sampler (for a single-window trajectory record).
    """
    cfg: Config = model.config
    device = next(model.parameters()).device
    w = cfg.diffusion.w if w is None else w
    total = len(wave) // cfg.audio.hop_length
    if total == 0:
        return np.zeros((cfg.model.n_keys, 0), dtype=np.float32)
    size = cfg.audio.segment_frames
    plan = plan_windows(total, size, size // 4 if overlap is None else overlap)
    frontend = MelFrontend(cfg.audio).to(device)
    diffusion = Diffusion.from_config(cfg.diffusion)
    generator = torch.Generator().manual_seed(seed)
    out = np.zeros((cfg.model.n_keys, total), dtype=np.float32)
    batches = range(0, len(plan.starts), batch_size)
    for b in tqdm(batches, desc="windows", unit="batch", disable=not progress or len(batches) < 2):
        starts = plan.starts[b:b + batch_size]
        mel = window_mels(wave, starts, cfg, frontend).to(device)
        if mask is not None:
            m = np.zeros((len(starts), size), dtype=bool)
            for i, s in enumerate(starts):
                part = mask[s:s + size]
                m[i, :len(part)] = part
            mel = mask_mel(mel, torch.from_numpy(m).to(device))
        if cfg.train.mode == "discriminative":  # §4.1 baseline: one pass with x_t = 0, t = 1
            x0 = model(torch.zeros(len(starts), cfg.model.n_keys, size, device=device),
                       torch.ones(len(starts), dtype=torch.long, device=device), mel)
        else:
            x0 = diffusion.sample(model, mel, w=w, sampler=sampler, steps=steps, generator=generator,
                                  callback=callback)
        x0 = x0.float().cpu().numpy()
        for i, s in enumerate(starts):
            lo, hi = plan.keep[b + i]
            out[:, lo:hi] = x0[i, :, lo - s:hi - s]
    return out


def transcribe_notes(model, wave: np.ndarray, threshold: float | None = None, **kwargs) -> tuple[list[Note], np.ndarray]:
    """Audio -> (notes, posteriorgram)."""
    x0 = transcribe_wave(model, wave, **kwargs)
    cfg: Config = model.config
    th = cfg.diffusion.threshold if threshold is None else threshold
    return roll_to_notes(x0, fps=cfg.audio.fps, threshold=th), x0


def transcribe(audio: str | Path | np.ndarray, checkpoint: str | Path | None = None, model=None,
               device: str | None = None, **kwargs) -> pretty_midi.PrettyMIDI:
    """Audio file (any rate, mono/stereo) or a 16 kHz mono array -> PrettyMIDI.

    ``model`` (from :func:`diffroll.load_model`) wins over ``checkpoint``; neither: the bundled
    model. Other keyword arguments go to :func:`transcribe_wave` (w, sampler, steps, seed, ...).
    """
    if model is None:
        from .checkpoint import load_model
        model = load_model(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sr = model.config.audio.sample_rate
    wave = load_audio(audio, sr=sr) if isinstance(audio, (str, Path)) else np.asarray(audio, dtype=np.float32)
    notes, _ = transcribe_notes(model, wave, **kwargs)
    return notes_to_midi(notes)
