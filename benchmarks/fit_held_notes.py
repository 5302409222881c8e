"""Fit the guess of pedal-held notes (:mod:`diffroll.transcription.held_notes`) for a checkpoint: the logistic
model on transcriptions of TRAINING pieces, its threshold on the VALIDATION split (never a test
split); optionally export the checkpoint with it in its config (``roll.held_notes``).

    .venv/bin/python benchmarks/fit_held_notes.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--fit-pieces 160] [--pieces 96] [--max-seconds 60] [--thresholds 0.2 0.25 0.3 0.35 0.4]
        [--export checkpoints/diffroll-cpu.pt]

Every piece is transcribed once with the CLI's sampler and the checkpoint's w and decoded without
any pedal; the fit uses the notes whose candidate offset (or their own) matches the reference
(:func:`diffroll.transcription.held_notes.candidate_labels`). The threshold of the highest mean note-with-offset
F1 over the validation excerpts is kept (note F1 does not change: no note is added or removed).
Writes runs/tune/held-notes-<checkpoint>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diffroll.evaluation.diagnosis import diagnosis_setup
from diffroll.core.checkpoint import export_weights
from diffroll.transcription.confidence import note_array
from diffroll.corpus.segments import load_pieces
from diffroll.evaluation.metrics import note_scores
from diffroll.transcription.held_notes import (candidate_labels, fit_held_note_model, frame_tracks, held_note_features,
                                 hold_notes, note_shapes)
from diffroll.transcription.settings import DecodeSettings
from diffroll.transcription.decoding import decode_roll
from diffroll.core.paths import bundled_checkpoint
from diffroll.core.roll import channel_rows

ROOT = Path(__file__).resolve().parents[1]


def transcribed(pipe, pieces, desc: str) -> list[dict]:
    """Per piece: its notes decoded without any pedal (sorted note_array), their shapes, the frame
    tracks and the reference notes."""
    cfg, fps = pipe.config, pipe.config.audio.fps
    dry = dataclasses.replace(DecodeSettings.of(cfg), held_notes=None, pedal_threshold=None)
    out = []
    for _, _, wave, ref in tqdm(pieces, desc=desc, unit="piece"):
        x0 = pipe.transcribe(wave, keep_samples=False, progress=False).roll  # the CLI's sampling
        frame = x0[channel_rows(dry.channels, "frame")]
        arr = note_array(decode_roll(x0, fps, dry))
        arr = arr[np.lexsort(arr.T[::-1])]
        out.append(dict(arr=arr, shapes=note_shapes(frame, arr, fps, dry.silent_below), tracks=frame_tracks(frame),
                        ref=ref))
    return out


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fit-pieces", type=int, default=160, help="training pieces the model is fit on")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35, 0.4])
    p.add_argument("--export", type=Path, default=None, help="write the fp16 EMA weights with the fitted guess here")


def main(argv: list[str] | None = None) -> int:
    args, pipe = diagnosis_setup(__doc__, argv, pieces=96, more_options=options)  # --pieces: the threshold's
    checkpoint = args.checkpoint or bundled_checkpoint()
    cfg, fps = pipe.config, pipe.config.audio.fps
    fit = transcribed(pipe, load_pieces(args.data, "train", None, args.fit_pieces, args.max_seconds, cfg=cfg,
                                        spread=True), "fit (train)")
    tune = transcribed(pipe, load_pieces(args.data, "validation", None, args.pieces, args.max_seconds, cfg=cfg,
                                         spread=True), "threshold (validation)")
    if not fit or not tune:
        raise SystemExit(f"{args.data}: no training or validation pieces (build the corpus: make data)")
    features, labels = [], []
    for d in fit:
        f, candidate = held_note_features(d["arr"], d["shapes"], d["tracks"], fps)
        features.append(f)
        labels.append(candidate_labels(d["ref"], d["arr"], candidate))
    labels = np.concatenate(labels)
    model = fit_held_note_model(np.concatenate(features), labels)
    print(f"fit on {len(fit)} training excerpts: {int((labels == 1).sum())} notes held, {int((labels == 0).sum())} not")
    rows = [{"threshold": None, "f1_offset": float(np.mean([note_scores(d["ref"], [tuple(n) for n in d["arr"]])
                                                           ["f1_offset"] for d in tune]))}]
    for t in args.thresholds:
        guess = dataclasses.replace(model, threshold=t)
        rows.append({"threshold": t, "f1_offset": float(np.mean([
            note_scores(d["ref"], hold_notes(d["arr"], d["shapes"], d["tracks"], fps, guess))["f1_offset"]
            for d in tune]))})
    print(f"{len(tune)} validation excerpts of {args.max_seconds:g} s, note-with-offset F1:")
    print("| threshold | note-with-offset F1 |\n| --- | ---: |")
    for r in rows:
        print(f"| {'off' if r['threshold'] is None else r['threshold']} | {r['f1_offset']:.4f} |")
    best = max(rows, key=lambda r: r["f1_offset"])
    out = ROOT / "runs" / "tune" / f"held-notes-{Path(checkpoint).parent.name}-{Path(checkpoint).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    model = dataclasses.replace(model, threshold=best["threshold"]) if best["threshold"] is not None else None
    out.write_text(json.dumps({"checkpoint": str(checkpoint), "fit_pieces": len(fit), "pieces": len(tune),
                               "max_seconds": args.max_seconds, "rows": rows,
                               "held_notes": model.to_dict() if model else None}, indent=1))
    print(f"wrote {out}")
    if args.export:
        if model is None:
            raise SystemExit("the guess does not beat decoding without it on validation: nothing exported")
        path = export_weights(checkpoint, args.export, half=True, settings={"roll": {"held_notes": model.to_dict()}})
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB) with held_notes at threshold {model.threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
