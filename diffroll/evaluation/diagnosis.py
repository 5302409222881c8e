"""Diagnoses on validation excerpts, shared by the benchmarks' diagnosis and fit_* scripts: their
common options and pipeline (:func:`diagnosis_setup`), and where note-with-offset F1 is lost
(:func:`offset_diagnosis`: for the onset-matched notes, the share whose offset is within the
tolerance, too early or too late, by the reference note's length)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.paths import bundled_checkpoint, data_dir
from ..corpus.loaders import DataError
from ..corpus.segments import load_pieces
from ..transcription.pipeline import Pipeline, load_model
from .metrics import offset_errors

LENGTH_BINS = (0.0, 0.25, 0.5, 1.0, 2.0, np.inf)  # seconds


def diagnosis_setup(doc: str, argv: list[str] | None = None, pieces: int = 24,
                    more_options: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> tuple[argparse.Namespace, Pipeline]:
    """The options of a script on validation excerpts (checkpoint, data, ``pieces``, max seconds,
    threads, and whatever ``more_options`` adds), parsed, and the checkpoint's pipeline (the
    bundled model by default). The diagnoses and the fit_* scripts share it."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    p.add_argument("--data", type=Path, default=data_dir("offline-cpu"))
    p.add_argument("--pieces", type=int, default=pieces, help=f"validation excerpts (default: {pieces})")
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    if more_options is not None:
        more_options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args, load_model(args.checkpoint or bundled_checkpoint())


def validation_pieces(root: Path, cfg, n: int | None, max_seconds: float | None, least: int = 1) -> list:
    """``n`` renders of ``root``'s validation split (None: all), spread evenly over it, each cut to
    ``max_seconds``: what every tuning and diagnosis script reads (never the test splits). Raises
    DataError, naming the corpus and ``make data``, when fewer than ``least`` are there."""
    pieces = load_pieces(root, "validation", None, n, max_seconds, cfg=cfg, spread=True)
    if len(pieces) < least:
        raise DataError(f"{root}: {len(pieces)} validation pieces, {least} needed (build the corpus: make data)")
    return pieces


def offset_diagnosis(pipe: Pipeline, data: Path, n_pieces: int, max_seconds: float) -> tuple[int, np.ndarray]:
    """(pieces, rows): the offset errors (:func:`~diffroll.evaluation.metrics.offset_errors`) of
    the onset-matched notes of ``n_pieces`` validation excerpts, transcribed with the pipeline's own
    settings (the CLI's)."""
    pieces = validation_pieces(data, pipe.config, n_pieces, max_seconds)
    rows = [offset_errors(ref, pipe.transcribe(wave, progress=False, keep_roll=False, keep_samples=False).notes)
            for _, _, wave, ref in pieces]
    return len(pieces), np.concatenate(rows)


def offset_table(rows: np.ndarray) -> str:
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
