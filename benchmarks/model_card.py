"""Scores for the model card: checkpoints on the offline corpus's whole test split.

    .venv/bin/python benchmarks/model_card.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--baseline checkpoints/discriminative-cpu.pt] [--snapshot runs/bundled/weights-step4000.pt]
        [--sampler ddim --steps 5] [--max-seconds None] [--out figures/model_card.md]

Every test piece (unseen music), rendered with the training soundfonts ("seen timbre") and with
FluidR3_GM / MuseScore_General ("unseen timbre"), transcribed whole with the CLI's code path and
scored with mir_eval (note F1 at 50 ms, note-with-offset F1). Not a test: it reports numbers.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffroll.checkpoint import load_checkpoint, load_model
from diffroll.data import list_pieces, load_piece
from diffroll.evaluate import evaluate_pieces, summarise

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "diffroll-cpu.pt")
    p.add_argument("--baseline", type=Path, default=ROOT / "checkpoints" / "discriminative-cpu.pt")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="DiffRoll weights with the baseline's training budget (equal-budget row)")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--ws", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "figures" / "model_card.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    pieces = list_pieces(args.data, dataset="offline", split="test")
    cfg = load_model(args.checkpoint).config
    unseen = set(cfg.data.test_soundfonts)
    loaded = []
    for piece in pieces:
        wave, ref = load_piece(piece, cfg)
        loaded.append((piece.name, "unseen" if piece.group in unseen else "seen", wave, ref))
    audio_min = sum(len(w) for _, _, w, _ in loaded) / cfg.audio.sample_rate / 60

    rows = []  # (label, steps trained, w, summary)
    models = [("DiffRoll (bundled)", args.checkpoint, args.ws)]
    if args.snapshot is not None and args.snapshot.is_file():
        models.append(("DiffRoll (equal budget)", args.snapshot, args.ws))
    if args.baseline is not None and args.baseline.is_file():
        models.append(("Discriminative (§4.1)", args.baseline, [0.0]))
    for label, path, ws in models:
        model = load_model(path)
        trained = load_checkpoint(path).get("step", "?")
        for w in ws:
            start = time.perf_counter()
            scored = evaluate_pieces(model, loaded, max_seconds=args.max_seconds, sampler=args.sampler,
                                     steps=args.steps, w=w, progress=False)
            summary = summarise(scored)
            rows.append((label, trained, w, summary))
            print(f"{label:26s} step {trained:>6} w={w:<4} seen F1 {summary['seen']['f1']:.3f} "
                  f"unseen F1 {summary['unseen']['f1']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)

    lines = [
        "# Model card scores — offline test split",
        "",
        f"Written by `benchmarks/model_card.py`: {len(loaded)} renderings of {len(pieces) // 4 or len(pieces)} "
        f"unseen test pieces ({audio_min:.1f} min of audio), seen timbre = {', '.join(cfg.data.soundfonts)}, "
        f"unseen timbre = {', '.join(sorted(unseen))}; sampler `{args.sampler}`, {args.steps} steps; "
        f"each piece transcribed whole{'' if args.max_seconds is None else f' (first {args.max_seconds:g} s)'}; "
        "mir_eval note F1 (onset ±50 ms) and note-with-offset F1, mean over pieces.",
        "",
        "| model | training steps | w | note F1 seen | note F1 unseen | offset F1 seen | offset F1 unseen | RTF |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, trained, w, s in rows:
        lines.append(f"| {label} | {trained} | {w:g} | {100 * s['seen']['f1']:.1f} | {100 * s['unseen']['f1']:.1f} | "
                     f"{100 * s['seen']['f1_offset']:.1f} | {100 * s['unseen']['f1_offset']:.1f} | "
                     f"{s['all']['rtf']:.3f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
