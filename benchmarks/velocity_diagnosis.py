"""Does the audio carry the velocities, and does a model read them? Two correlations, per piece:

- **data**: on training renders, the level (dB) of the STFT bin at each reference note's pitch just
  after its onset against the note's MIDI velocity (the signal a model could learn from);
- **model**: on validation excerpts, the velocity of each transcribed note against the reference
  note it matches (mir_eval onset matching, offsets ignored), for each checkpoint given.

    .venv/bin/python benchmarks/velocity_diagnosis.py [--checkpoints checkpoints/diffroll-cpu.pt ...]
        [--train-pieces 10] [--val-pieces 6] [--max-seconds 30] [--threads 1]

A diagnosis, not a test: it prints the correlations and their means.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import mir_eval
import numpy as np
import torch
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]

from diffroll.transcription.pipeline import load_model  # noqa: E402
from diffroll.core.config import get_config  # noqa: E402
from diffroll.corpus.segments import list_pieces, load_piece  # noqa: E402
from diffroll.evaluation.diagnosis import validation_pieces  # noqa: E402
from diffroll.evaluation.metrics import note_arrays  # noqa: E402

HOP, N_FFT = 512, 2048


def onset_levels(wave: np.ndarray, notes, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(level dB, velocity) of every note: the loudest of the 3 STFT bins around its pitch over the
    3 frames after its onset (the attack, past the window's lead-in)."""
    freqs, _, spec = signal.stft(wave, fs=sr, nperseg=N_FFT, noverlap=N_FFT - HOP)
    mag = np.abs(spec)
    levels, velocities = [], []
    for n in notes:
        b = int(np.argmin(np.abs(freqs - 440.0 * 2 ** ((n.pitch - 69) / 12))))
        f = int(round(n.onset * sr / HOP)) + 2
        if f + 3 <= mag.shape[1]:
            levels.append(20 * np.log10(mag[max(b - 1, 0):b + 2, f:f + 3].max() + 1e-9))
            velocities.append(n.velocity)
    return np.asarray(levels), np.asarray(velocities)


def data_correlations(root: Path, n: int, cfg) -> list[tuple[str, str, float]]:
    pieces = list_pieces(root, dataset="offline", split="train")
    random.Random(0).shuffle(pieces)
    out = []
    for piece in pieces[:n]:
        wave, notes = load_piece(piece, cfg)
        levels, velocities = onset_levels(wave, notes, cfg.audio.sample_rate)
        out.append((piece.name, piece.group, float(np.corrcoef(levels, velocities)[0, 1])))
    return out


def model_correlations(checkpoint: Path, pieces) -> list[tuple[str, str, float]]:
    pipe = load_model(checkpoint)
    out = []
    for name, group, wave, ref in pieces:
        est = pipe.transcribe(wave, keep_samples=False, progress=False).notes  # the CLI's sampling (was 200 steps)
        (ri, rp, rv), (ei, ep, ev) = note_arrays(ref), note_arrays(est)
        pairs = mir_eval.transcription.match_notes(ri, rp, ei, ep, offset_ratio=None)
        r, e = np.array([rv[i] for i, _ in pairs]), np.array([ev[j] for _, j in pairs])
        out.append((name, group, float(np.corrcoef(r, e)[0, 1]) if len(pairs) > 2 and e.std() > 0 else float("nan")))
    return out


def report(title: str, rows: list[tuple[str, str, float]]) -> None:
    print(f"\n{title}")
    for name, group, c in rows:
        print(f"  {name[:36]:36s} {group:18s} {c:+.2f}")
    print(f"  mean {np.nanmean([c for *_, c in rows]):+.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, nargs="*", default=[ROOT / "checkpoints" / "diffroll-cpu.pt"])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--train-pieces", type=int, default=10)
    p.add_argument("--val-pieces", type=int, default=6)
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = get_config("cpu")
    report(f"data: STFT level at the pitch vs velocity, {args.train_pieces} training renders",
           data_correlations(args.data, args.train_pieces, cfg))
    pieces = validation_pieces(args.data, cfg, args.val_pieces, args.max_seconds)
    for checkpoint in args.checkpoints:
        report(f"model: transcribed vs reference velocity, {checkpoint}", model_correlations(checkpoint, pieces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
