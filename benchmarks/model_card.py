"""Scores for the model card: the bundled model, DiffRoll at the baseline's budget, the
discriminative baseline and basic-pitch, on the same audio: the whole piano test split (the
headline) and the whole first test split of the offline corpus.

    .venv/bin/python benchmarks/model_card.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--baseline checkpoints/discriminative-cpu.pt] [--snapshot PATH] [--sampler ddpm --steps 5] [--precision auto]
        [--ws 0 0.5] [--samples 1 4] [--max-seconds None] [--threads 2] [--no-basic-pitch] [--out figures/model_card.md]

- piano test split: pedalled piano music (music21 keyboard pieces held out by piece, pianistic
  pieces from their own seed) rendered only in timbres never used for training: FluidR3_GM,
  MuseScore_General and the procedural piano at held-out parameters;
- first test split: music21 scores and studies as written, in the training soundfonts ("seen
  timbre") and in FluidR3_GM / MuseScore_General ("unseen timbre").

Every piece is transcribed whole with the CLI's code path (:meth:`Pipeline.transcribe`'s window
machinery) and scored with mir_eval: note F1 (onset ±50 ms), note-with-offset F1, note-with-
offset-and-velocity F1, and the notes that split a held reference note (:func:`split_notes`).
The bundled model is scored with one sample (the CLI's default) and with the mean of K samples
(``--samples``; ``diffroll transcribe --samples K``).
Not a test: it reports numbers (``runs/model_card/results.json`` keeps every row).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_samplers import run_basic_pitch  # noqa: E402  (basic-pitch in its own venv, shared)

from diffroll.checkpoint import load_checkpoint, load_pipeline, trained_steps  # noqa: E402
from diffroll.data import load_pieces  # noqa: E402
from diffroll.evaluate import evaluate_pieces, mean_scores  # noqa: E402
from diffroll.inference import DEFAULT_SAMPLER, DEFAULT_STEPS, PRECISIONS  # noqa: E402

SETS = ("piano_test", "test")


def load_set(root: Path, split: str, cfg, max_seconds: float | None) -> list[tuple]:
    """(name, group, wave, notes) of every rendering of a split, cut to ``max_seconds``."""
    return load_pieces(root, split, None, None, max_seconds, cfg=cfg)


def timbre(group: str, cfg) -> str:
    return "seen" if group in cfg.data.soundfonts else "unseen"


def tag(rows: list[dict], label: str, trained, w, split: str, cfg) -> list[dict]:
    return [{**r, "model": label, "trained": trained, "w": w, "set": split, "timbre": timbre(r["group"], cfg)}
            for r in rows]


def basic_pitch_rows(pieces, sr: int, threads: int) -> list[dict]:
    """basic-pitch's rows in the layout of :func:`evaluate_pieces` (its MIDI scored the same way)."""
    from diffroll.evaluate import note_scores, split_notes

    rows, _ = run_basic_pitch(pieces, sr, threads)
    out = []
    for (name, group, wave, ref), r in zip(pieces, rows):
        est = r["est"]
        out.append(dict(name=name, group=group, seconds=r["seconds"], wall_seconds=r["wall"],
                        rtf=r["wall"] / r["seconds"], n_ref=len(ref), n_est=len(est),
                        split_notes=split_notes(ref, est), **note_scores(ref, est)))
    return out


def table(rows: list[dict], by: tuple, title: str) -> list[str]:
    keys = ("f1", "f1_offset", "f1_velocity", "split_notes", "rtf")
    head = [title, "", "| " + " | ".join(by) + " | pieces | note F1 | offset F1 | velocity F1 | split notes / piece | RTF |",
            "|" + " --- |" * len(by) + " ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines = []
    for m in mean_scores(rows, by=by):
        cells = [str(m[b]) if not isinstance(m[b], float) else format(m[b], "g") for b in by]
        vals = [f"{100 * m[k]:.1f}" if k.startswith("f1") else f"{m[k]:.2f}" if k == "split_notes" else f"{m[k]:.3f}"
                for k in keys]
        lines.append("| " + " | ".join(cells) + f" | {m['pieces']} | " + " | ".join(vals) + " |")
    return head + lines + [""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "diffroll-cpu.pt")
    p.add_argument("--baseline", type=Path, default=ROOT / "checkpoints" / "discriminative-cpu.pt")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="DiffRoll weights with the baseline's training budget (equal-budget rows)")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER, help=f"default: the CLI's ({DEFAULT_SAMPLER})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"default: the CLI's ({DEFAULT_STEPS})")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the network's arithmetic, as the CLI's --precision (auto: bf16 where the CPU has it natively)")
    p.add_argument("--ws", type=float, nargs="+", default=None,
                   help="guidance weights (default: each checkpoint's own, as the CLI uses it)")
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4],
                   help="K samples per piece for the bundled model, each K a row (default: 1 4)")
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-basic-pitch", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "figures" / "model_card.md")
    p.add_argument("--label", default="DiffRoll (bundled)", help="the checkpoint's name in the tables")
    p.add_argument("--raw", type=Path, default=ROOT / "runs" / "model_card" / "results.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    bundled = load_pipeline(args.checkpoint)
    cfg = bundled.config
    sets = {s: load_set(args.data, s, cfg, args.max_seconds) for s in args.sets}
    if any(k < 1 for k in args.samples):
        p.error(f"--samples must be whole numbers >= 1, got {args.samples}")
    models = [(args.label if k == 1 else f"{args.label}, mean of {k} samples", args.checkpoint, args.ws, k)
              for k in args.samples]
    if args.snapshot is not None and args.snapshot.is_file():
        models.append(("DiffRoll, baseline's budget", args.snapshot, args.ws, 1))
    if args.baseline is not None and args.baseline.is_file():
        models.append(("Discriminative (§4.1)", args.baseline, [None], 1))

    rows: list[dict] = []
    for label, path, ws, k in models:
        pipe = bundled if path == args.checkpoint else load_pipeline(path)
        trained = trained_steps(load_checkpoint(path))
        for w in ws or [pipe.config.diffusion.w if pipe.config.train.mode == "diffusion" else None]:
            for split, pieces in sets.items():
                start = time.perf_counter()
                scored = evaluate_pieces(pipe, pieces, sampler=args.sampler, steps=args.steps, w=w, progress=False,
                                         precision=args.precision, samples=k)
                rows += tag(scored, label, trained, "–" if w is None else w, split, pipe.config)
                m = mean_scores(scored, by=())[0]
                print(f"{label:30s} w={w} {split:10s} F1 {m['f1']:.3f} offset {m['f1_offset']:.3f} "
                      f"velocity {m['f1_velocity']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    if not args.no_basic_pitch:
        for split, pieces in sets.items():
            scored = basic_pitch_rows(pieces, cfg.audio.sample_rate, args.threads)
            rows += tag(scored, "basic-pitch (ICASSP 2022)", "–", "–", split, cfg)
            m = mean_scores(scored, by=())[0]
            print(f"{'basic-pitch':30s}       {split:10s} F1 {m['f1']:.3f} offset {m['f1_offset']:.3f}", flush=True)

    raw = args.raw
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(rows, indent=1, default=str))
    minutes = {s: sum(len(w) for _, _, w, _ in ps) / cfg.audio.sample_rate / 60 for s, ps in sets.items()}
    lines = [
        "# Model card scores",
        "",
        f"Written by `benchmarks/model_card.py` (`make model-card`). Sampler `{args.sampler}`, {args.steps} steps; "
        f"every piece transcribed whole{'' if args.max_seconds is None else f' (first {args.max_seconds:g} s)'}; "
        "mir_eval note F1 (onset ±50 ms), note-with-offset F1, note-with-offset-and-velocity F1 (mean over "
        "pieces); *split notes*: estimated notes that cut a held reference note in two (a spurious re-strike).",
        "",
    ]
    if "piano_test" in sets:
        p_pieces = sets["piano_test"]
        lines += [f"**Piano test split** (the headline): {len(p_pieces)} renderings, {minutes['piano_test']:.1f} min "
                  "of pedalled piano music (held-out keyboard pieces and pianistic pieces) in timbres never used in "
                  "training: " + ", ".join(sorted({g for _, g, _, _ in p_pieces})) + ".", ""]
        piano = [r for r in rows if r["set"] == "piano_test"]
        lines += table(piano, ("model", "trained", "w"), "## Piano test split, all unseen timbres")
        lines += table(piano, ("model", "w", "group"), "### by timbre")
    if "test" in sets:
        lines += [f"**First test split**: {len(sets['test'])} renderings ({minutes['test']:.1f} min) of held-out "
                  "music21 scores and studies as written; seen timbre = " + ", ".join(cfg.data.soundfonts[:2]) +
                  "; unseen = " + ", ".join(cfg.data.test_soundfonts) + ".", ""]
        lines += table([r for r in rows if r["set"] == "test"], ("model", "trained", "w", "timbre"),
                       "## First test split")
    args.out.write_text("\n".join(lines))
    print("wrote", args.out, "and", raw)


if __name__ == "__main__":
    main()
