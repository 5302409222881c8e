"""Calibrate a checkpoint's per-note confidence (:class:`diffroll.transcription.confidence.Calibration`) on the
VALIDATION split (never a test split); optionally export the checkpoint with it in its config
(``roll.confidence_calibration``).

    .venv/bin/python benchmarks/fit_confidence.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--pieces 48] [--max-seconds 60] [--samples 4] [--combine mean] [--export checkpoints/diffroll-cpu.pt]

Every piece is transcribed with K samples and the CLI's sampler, combined as the checkpoint
combines them (``roll.combine_samples``) or as ``--combine`` says: with "vote" every candidate
note of the vote (:func:`diffroll.transcription.confidence.cluster_notes`), with "mean" every note read from the
samples' mean x̂0 with its share of samples (:func:`diffroll.transcription.confidence.support`; 0 to K votes),
is right or not (onset within 50 ms of a reference note of its pitch). Prints the expected
calibration error of the raw vote shares and of the calibration fit on the other half of the
pieces (each half scored by the other's fit), then fits on all of them. Writes
runs/tune/confidence-<checkpoint>.json; ``--export`` stores the calibration and the way of
combining it was fit for (``roll.combine_samples``) in the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diffroll.evaluation.diagnosis import diagnosis_setup, validation_pieces
from diffroll.core.checkpoint import export_weights
from diffroll.transcription.confidence import (Calibration, cluster_notes, expected_calibration_error, fit_calibration,
                                 support, true_positives, vote_bins)
from diffroll.transcription.settings import COMBINES
from diffroll.core.paths import bundled_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=4, help="K, as notebook 10 and --samples use it")
    p.add_argument("--combine", choices=COMBINES, default=None,
                   help="how K samples combine (default: the checkpoint's)")
    p.add_argument("--export", type=Path, default=None, help="write the fp16 weights with the calibration here")


def main(argv: list[str] | None = None) -> int:
    args, pipe = diagnosis_setup(__doc__, argv, pieces=48, more_options=options)
    checkpoint = args.checkpoint or bundled_checkpoint()
    pieces = validation_pieces(args.data, pipe.config, args.pieces, args.max_seconds, least=2)
    combine = args.combine or pipe.config.roll.combine_samples
    per_piece = []  # (shares, right) of each piece's candidates
    for _, _, wave, ref in tqdm(pieces, desc="validation", unit="piece"):
        result = pipe.transcribe(wave, pipe.sampling.replace(samples=args.samples, combine=combine), progress=False, keep_roll=False)
        if combine == "mean":  # the written notes, with their raw shares (result.confidence may be calibrated)
            notes = result.notes
            shares = support(notes, result.sample_notes)
        else:
            candidates = cluster_notes(result.sample_notes)
            notes, shares = [c.note for c in candidates], [c.confidence for c in candidates]
        per_piece.append((np.array(shares), true_positives(ref, notes)))
    lowest = 0 if combine == "mean" else 1
    k, raw_bins = args.samples, vote_bins(args.samples, lowest=lowest)
    share, right = (np.concatenate(x) for x in zip(*per_piece))
    halves = [list(range(0, len(per_piece), 2)), list(range(1, len(per_piece), 2))]
    crossed = []
    for fit_on, score_on in (halves, halves[::-1]):
        calibration = fit_calibration(*(np.concatenate([per_piece[i][j] for i in fit_on]) for j in (0, 1)), k)
        s, r = (np.concatenate([per_piece[i][j] for i in score_on]) for j in (0, 1))
        crossed.append((calibration(s, k), r, calibration))
    ece_raw = expected_calibration_error(share, right, raw_bins)
    ece_crossed = np.average([expected_calibration_error(c, r, vote_bins(k, cal, lowest)) for c, r, cal in crossed],
                             weights=[len(r) for _, r, _ in crossed])
    stored = Calibration.of(pipe.config.roll.confidence_calibration)  # the checkpoint's own, fit earlier
    ece_stored = (expected_calibration_error(stored(share, k), right, vote_bins(k, stored, lowest))
                  if stored is not None else None)
    calibration = fit_calibration(share, right, k)
    votes = np.round(share * k)
    by_votes = {v: float(right[votes == v].mean()) for v in range(lowest, k + 1) if (votes == v).any()}
    print(f"{len(pieces)} validation excerpts, K = {k} ({combine}): {len(share)} candidate notes, "
          f"right per vote count {by_votes}")
    print(f"ECE of the vote share {ece_raw:.3f}; calibrated (each half by the other's fit) {ece_crossed:.3f}"
          + (f"; by the checkpoint's calibration {ece_stored:.3f}" if ece_stored is not None else ""))
    print(f"calibration on all: slope {calibration.slope:.3f}, intercept {calibration.intercept:.3f} -> "
          + ", ".join(f"{v}/{k}: {calibration(v / k, k):.3f}" for v in range(lowest, k + 1)))
    out = ROOT / "runs" / "tune" / f"confidence-{Path(checkpoint).parent.name}-{Path(checkpoint).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(checkpoint), "pieces": len(pieces), "samples": k, "combine": combine,
                               "max_seconds": args.max_seconds, "right_per_votes": by_votes, "ece_raw": ece_raw,
                               "ece_crossed": float(ece_crossed), "ece_stored": ece_stored,
                               "confidence_calibration": [calibration.slope, calibration.intercept]}, indent=1))
    print(f"wrote {out}")
    if args.export:
        path = export_weights(checkpoint, args.export, half=True,
                              settings={"roll": {"confidence_calibration": [calibration.slope, calibration.intercept],
                                                 "combine_samples": combine}})
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
