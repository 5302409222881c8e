"""Fewer network passes on the VALIDATION split: the CLI's sampling (``SamplingSettings``' sampler and steps
at the checkpoint's w) against other DDPM settings, each with the checkpoint's decoding, to choose the CLI's default.

    .venv/bin/python benchmarks/sampler_validation.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--pieces 96] [--max-seconds 60] [--settings ddpm:5:0.5 ddpm:3:0.5 ddpm:3:0 ...] [--threads 1] [--seed 0]

A setting is ``sampler:steps:w``. Each costs steps × (2 network passes where w ≠ 0, the conditional
and unconditional x̂0 of Algorithm 1's guidance; 1 where w = 0) per window. Every validation piece
(spread over the split, cut to ``--max-seconds``) is transcribed whole with the CLI's code path
(:func:`diffroll.evaluation.runners.evaluate_pieces`), ``--seed`` 0, and scored with mir_eval.

The rule, fixed before the numbers: the cheapest setting (fewest passes; ties: higher note F1)
whose note F1 and note-with-offset F1 are each at most ``--tolerance`` points (default 0.3) below
the first setting's. Writes ``runs/sampler_validation/<checkpoint>-<seconds>s-seed<seed>.json``; prints a
markdown table.
Not a test: it reports numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffroll.evaluation.diagnosis import validation_pieces
from diffroll.evaluation.metrics import summarise
from diffroll.evaluation.runners import evaluate_pieces
from diffroll.transcription.pipeline import load_model

ROOT = Path(__file__).resolve().parents[1]


def parse_setting(text: str) -> dict:
    """``sampler:steps:w`` -> {sampler, steps, w}."""
    try:
        sampler, steps, w = text.split(":")
        return {"sampler": sampler, "steps": int(steps), "w": float(w)}
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: a setting is sampler:steps:w, e.g. ddpm:3:0.5") from err


def passes(setting: dict) -> int:
    """Network passes per window: one per step, two with guidance (w ≠ 0)."""
    return setting["steps"] * (1 if setting["w"] == 0 else 2)


def choose(rows: list[dict], tolerance: float) -> dict:
    """The cheapest row within ``tolerance`` points of the first row on note and note-with-offset F1."""
    ref = rows[0]
    ok = [r for r in rows if r["f1"] >= ref["f1"] - tolerance / 100 and r["f1_offset"] >= ref["f1_offset"] - tolerance / 100]
    return min(ok, key=lambda r: (r["passes"], -r["f1"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "diffroll-cpu.pt")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--pieces", type=int, default=96)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--settings", type=parse_setting, nargs="+", default=None,
                   help="sampler:steps:w, the first the reference (default: the CLI's, then DDPM at 5, 4, 3, 2 "
                        "steps at its w and 5, 3, 2 at w = 0, less the CLI's own)")
    p.add_argument("--tolerance", type=float, default=0.3, help="points of note / offset F1 a cheaper setting may lose")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0, help="x_T and DDPM's noise (the same draws for every piece's window i)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = load_model(args.checkpoint)
    default = {"sampler": pipe.sampling.sampler, "steps": pipe.sampling.steps, "w": pipe.sampling.w}
    grid = [{"sampler": "ddpm", "steps": s, "w": w} for s, w in ((5, default["w"]), (4, default["w"]), (3, default["w"]),
                                                                  (2, default["w"]), (5, 0.0), (3, 0.0), (2, 0.0))]
    settings = args.settings or [default, *(g for g in grid if g != default)]  # the reference once
    pieces = validation_pieces(args.data, pipe.config, args.pieces, args.max_seconds)
    minutes = sum(len(w) for _, _, w, _ in pieces) / pipe.config.audio.sample_rate / 60
    print(f"{len(pieces)} validation pieces, {minutes:.1f} min; {args.checkpoint}; threads {args.threads}")
    rows = []
    for s in settings:
        t0 = time.perf_counter()
        sampling = pipe.sampling.replace(**s, seed=args.seed, precision=args.precision)
        scored = evaluate_pieces(pipe, pieces, sampling, progress=False)
        overall = summarise(scored)["all"]
        rows.append({**s, "passes": passes(s), **{k: overall[k] for k in ("f1", "f1_offset", "f1_velocity", "rtf")}})
        print(f"{s['sampler']} x {s['steps']} at w = {s['w']:g}: note {overall['f1']:.4f}, offset {overall['f1_offset']:.4f}, "
              f"velocity {overall['f1_velocity']:.4f}, RTF {overall['rtf']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    best = choose(rows, args.tolerance)
    print("\n| sampler | steps | w | passes / window | note F1 | note-with-offset F1 | velocity F1 | RTF |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        mark = "**" if r is best else ""
        print(f"| {mark}{r['sampler']}{mark} | {r['steps']} | {r['w']:g} | {r['passes']} | {100 * r['f1']:.2f} | "
              f"{100 * r['f1_offset']:.2f} | {100 * r['f1_velocity']:.2f} | {r['rtf']:.4f} |")
    print(f"\nchosen (cheapest within {args.tolerance:g} points of the first row): "
          f"{best['sampler']} x {best['steps']} at w = {best['w']:g}")
    out = ROOT / "runs" / "sampler_validation" / f"{args.checkpoint.stem}-{args.max_seconds:g}s-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "pieces": [f"{n}/{g}" for n, g, _, _ in pieces],
                               "max_seconds": args.max_seconds, "tolerance": args.tolerance, "threads": args.threads,
                               "seed": args.seed,
                               "rows": rows, "chosen": best}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
