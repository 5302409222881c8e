"""Tune how notes are read from x̂0 -- onset threshold, frame threshold, the minimum length of a
frame run without onset, the minimum velocity of a note, the offset, re-strike and pedal thresholds, and
the guidance weight w -- on the VALIDATION split, never on a test split;
optionally export the bundled model with the chosen values in its config.

    .venv/bin/python benchmarks/tune_decoding.py --checkpoint runs/bundled-v2/checkpoint.pt \
        [--pieces 24] [--max-seconds 30] [--ws 0 0.5 1] [--export checkpoints/diffroll-cpu.pt]

Every validation piece is sampled once per w with the CLI's default sampler and steps, and decoded
with every threshold setting (:func:`diffroll.evaluation.runners.sweep_thresholds`). The best setting is the
one of highest mean note F1 (ties: note-with-offset F1), or with ``--objective f1+offset`` of the
highest sum of the two. Writes runs/tune/<checkpoint>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from diffroll.core.checkpoint import export_weights  # noqa: E402

from diffroll.transcription.pipeline import load_model  # noqa: E402
from diffroll.evaluation.diagnosis import validation_pieces  # noqa: E402
from diffroll.evaluation.runners import sweep_thresholds  # noqa: E402
from diffroll.transcription.settings import SamplingSettings  # noqa: E402


OBJECTIVES = {"f1": lambda r: (r["f1"], r["f1_offset"]), "f1+offset": lambda r: (r["f1"] + r["f1_offset"], r["f1"])}


def _maybe_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--pieces", type=int, default=24)
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--ws", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--onset-thresholds", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6])
    p.add_argument("--frame-thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6])
    p.add_argument("--min-frames", type=int, nargs="+", default=[0, 4, 8],
                   help="min_frames_without_onset values (0: a frame run without onset is never a note)")
    p.add_argument("--min-velocities", type=int, nargs="+", default=[0, 5, 10, 20],
                   help="min_velocity values (notes read below are dropped; 0: none)")
    p.add_argument("--offset-thresholds", type=_maybe_float, nargs="+", default=None,
                   help="offset_threshold values: a started note lasts while frame > this ('none': the frame "
                        "threshold; default: the checkpoint's)")
    p.add_argument("--restrike-thresholds", type=_maybe_float, nargs="+", default=None,
                   help="restrike_threshold values: an onset inside a sounding note splits it above this ('none': "
                        "every onset; default: the checkpoint's)")
    p.add_argument("--pedal-thresholds", type=_maybe_float, nargs="+", default=None,
                   help="pedal_threshold values, for models with a pedal channel: a note ending while x̂0's pedal "
                        "is above this lasts until it falls ('none': the pedal unused; default: the checkpoint's)")
    p.add_argument("--objective", choices=OBJECTIVES, default="f1",
                   help="what the best setting maximises: note F1 (ties: note-with-offset F1), or the sum of "
                        "note F1 and note-with-offset F1 (default: f1)")
    p.add_argument("--sampler", default=SamplingSettings.sampler)
    p.add_argument("--steps", type=int, default=SamplingSettings.steps)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--export", type=Path, default=None, help="write the fp16 EMA weights with the best settings here")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    pipe = load_model(args.checkpoint)
    pieces = validation_pieces(args.data, pipe.config, args.pieces, args.max_seconds)
    minutes = sum(len(w) for _, _, w, _ in pieces) / pipe.config.audio.sample_rate / 60
    print(f"{len(pieces)} validation pieces, {minutes:.1f} min; sampler {args.sampler} x {args.steps}")
    mins = [None if m == 0 else m for m in args.min_frames]
    rows = []
    for w in args.ws:
        t0 = time.perf_counter()
        got = sweep_thresholds(pipe, pieces, onset_thresholds=args.onset_thresholds,
                               frame_thresholds=args.frame_thresholds, min_frames_without_onset=mins,
                               min_velocity=args.min_velocities, offset_thresholds=args.offset_thresholds,
                               restrike_thresholds=args.restrike_thresholds,
                               pedal_thresholds=args.pedal_thresholds, progress=True,
                               sampling=pipe.sampling.replace(sampler=args.sampler, steps=args.steps, w=w, seed=0))
        rows += [{"w": w, **r} for r in got]
        best_w = max(got, key=OBJECTIVES[args.objective])
        print(f"w={w}: best note F1 {best_w['f1']:.4f} at {best_w} ({time.perf_counter() - t0:.0f} s)")
    best = max(rows, key=OBJECTIVES[args.objective])
    print("best:", json.dumps(best))
    out = ROOT / "runs" / "tune" / f"{args.checkpoint.parent.name}-{args.checkpoint.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "pieces": [p[0] + "/" + p[1] for p in pieces],
                               "max_seconds": args.max_seconds, "sampler": args.sampler, "steps": args.steps,
                               "objective": args.objective,
                               "best": best, "rows": rows}, indent=1))
    print(f"wrote {out}")
    if args.export:
        settings = {"diffusion": {"w": best["w"], "threshold": best["frame_threshold"]}}
        if best["onset_threshold"] is not None:
            settings["roll"] = {"onset_threshold": best["onset_threshold"],
                                "min_frames_without_onset": best["min_frames_without_onset"],
                                "min_velocity": best["min_velocity"], "offset_threshold": best["offset_threshold"],
                                "restrike_threshold": best["restrike_threshold"]}
            if "pedal" in pipe.config.roll.roll_channels:
                settings["roll"]["pedal_threshold"] = best["pedal_threshold"]
        path = export_weights(args.checkpoint, args.export, half=True, settings=settings)
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB) with {settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
