"""Where note-with-offset F1 is lost: for the onset-matched notes of validation excerpts
(:func:`diffroll.evaluation.metrics.offset_errors`), the share whose offset is within the tolerance, too
early or too late, by the reference note's length (sustain-extended: a pedalled note lasts until
the pedal comes up).

    .venv/bin/python benchmarks/offset_diagnosis.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--pieces 24] [--max-seconds 60] [--threads 2]

A diagnosis, not a test: it prints one table (the CLI's sampler and the checkpoint's decoding settings).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from diffroll.transcription.pipeline import load_model  # noqa: E402
from diffroll.corpus.segments import load_pieces  # noqa: E402
from diffroll.evaluation.metrics import offset_errors  # noqa: E402
from diffroll.core.paths import bundled_checkpoint  # noqa: E402

LENGTH_BINS = (0.0, 0.25, 0.5, 1.0, 2.0, np.inf)  # seconds


def table(rows: np.ndarray) -> str:
    """Markdown: per reference-length bin, matched notes and the shares within / early / late, and
    the median offset error of the early ones."""
    duration, error, tolerance = rows.T
    lines = ["| reference length (s) | matched notes | offset within tolerance | ends early | ends late "
             "| median error of the early (s) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    bins = list(zip(LENGTH_BINS[:-1], LENGTH_BINS[1:])) + [(0.0, np.inf)]
    for lo, hi in bins:
        pick = (duration >= lo) & (duration < hi)
        if not pick.any():
            continue
        early, late = pick & (error < -tolerance), pick & (error > tolerance)
        label = "all" if (lo, hi) == (0.0, np.inf) else f"{lo:g}–{hi:g}"
        median_early = f"{np.median(error[early]):+.2f}" if early.any() else "–"
        lines.append(f"| {label} | {pick.sum()} | {1 - (early.sum() + late.sum()) / pick.sum():.2f} "
                     f"| {early.sum() / pick.sum():.2f} | {late.sum() / pick.sum():.2f} | {median_early} |")
    return "\n".join(lines)


def diagnosis_setup(doc: str, argv: list[str] | None = None, pieces: int = 24,
                    more_options: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> tuple[argparse.Namespace, object]:
    """The options of a script on validation excerpts (checkpoint, data, ``pieces``, max seconds,
    threads, and whatever ``more_options`` adds), parsed, and the checkpoint's pipeline (the
    bundled model by default). The diagnoses and the fit_* scripts share it."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--pieces", type=int, default=pieces, help=f"validation excerpts (default: {pieces})")
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    if more_options is not None:
        more_options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args, load_model(args.checkpoint or bundled_checkpoint())


def main(argv: list[str] | None = None) -> int:
    args, pipe = diagnosis_setup(__doc__, argv)
    pieces = load_pieces(args.data, "validation", None, args.pieces, args.max_seconds, cfg=pipe.config, spread=True)
    if not pieces:
        raise SystemExit(f"{args.data}: no validation pieces (build the corpus: make data)")
    rows = []
    for _, _, wave, ref in pieces:
        est = pipe.transcribe(wave, progress=False, keep_roll=False, keep_samples=False).notes  # the CLI's defaults
        rows.append(offset_errors(ref, est))
    print(f"{len(pieces)} validation excerpts of at most {args.max_seconds:g} s, {args.checkpoint or 'bundled model'}")
    print(table(np.concatenate(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
