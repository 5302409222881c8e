"""Which training-audio effect helps? One short fine-tune of the bundled model per variant of the
training audio (:data:`diffroll.corpus.variants.VARIANTS`: the corpus as built, and each effect
turned off in turn), the same steps, data rows, seed and learning-rate schedule for all; each scored
with the bundled file's decoding (nothing refit) on the corpus's validation split and the 88 real
notes. Never the test split: this chooses what the corpus keeps.

    .venv/bin/python benchmarks/effect_ablation.py [--variants all no_room ...] [--steps 800] [--seeds 0] [--repeat 1]
        [--source data/offline-cpu] [--runs runs/effects] [--val-pieces 48 --seconds 60]

Writes ``<runs>/<variant>/scores.json`` per variant (rerunning skips what is done) and the table
``figures/effects.{md,csv,png}``. Needs the offline ``cpu`` corpus and ``make real-piano``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffroll.core.checkpoint import config_of, export_weights, load_checkpoint
from diffroll.core.config import get_config
from diffroll.corpus.realpiano import load_real_notes
from diffroll.corpus.segments import SegmentTensors, list_pieces, segment_dataset
from diffroll.corpus.variants import VARIANTS, build_variant_corpus
from diffroll.evaluation.diagnosis import validation_pieces
from diffroll.evaluation.metrics import summarise
from diffroll.evaluation.runners import evaluate_pieces, evaluate_real_notes
from diffroll.lab.experiments import write_table
from diffroll.training.trainer import Trainer
from diffroll.transcription.pipeline import load_model

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "checkpoints" / "diffroll-cpu.pt"
BASS_OCTAVES = ("A0–B0", "C1–B1")  # the 15 lowest keys, where every model loses real notes (docs/data.md)


def fine_tune_config(steps: int, seed: int):
    """The bundled model's fine-tuning settings (docs/training.md): lr 1e-4, a cosine to 1e-5 from a quarter
    of the steps."""
    return get_config("cpu", lr=1e-4, velocity_head=32, lr_schedule="cosine", lr_decay_start=steps // 4,
                      lr_final=1e-5, max_steps=steps, max_minutes=0, seed=seed, snapshot_every=None)


def bundled_decoding() -> dict:
    """The bundled file's decoding settings, so a fine-tune is scored as it would ship (nothing refit)."""
    cfg = config_of(load_checkpoint(BUNDLED), BUNDLED).to_dict()
    roll = {k: v for k, v in cfg["roll"].items() if k not in ("channel_weights", "velocity_note_weight")}
    return {"roll": roll, "diffusion": {"w": cfg["diffusion"]["w"], "threshold": cfg["diffusion"]["threshold"]}}


def score(weights: Path, source: Path, val_pieces: int, seconds: float, real_seeds: int = 3) -> dict:
    """Validation note / note-with-offset F1 (``val_pieces`` x ``seconds`` spread over the split) and
    the real notes' keys found and extra notes per note, averaged over ``real_seeds`` sampling seeds:
    on 88 short notes one draw of the sampler's noise moves the extra notes by tenths. ``real_bass_found``:
    of those keys, how many of the 15 lowest (A0–B1)."""
    pipe = load_model(weights)
    val = validation_pieces(source, pipe.config, val_pieces, seconds)
    v = summarise(evaluate_pieces(pipe, val, progress=False))["all"]
    notes = load_real_notes()
    real = [evaluate_real_notes(pipe, notes, sampling=pipe.sampling.replace(seed=s)) for s in range(real_seeds)]
    found, extra = [r["found"] for r in real], [r["extra_per_note"] for r in real]
    if not set(BASS_OCTAVES) <= set(real[0]["by_octave"]):  # a renamed octave would count no bass key
        raise KeyError(f"real_note_scores' octaves are {list(real[0]['by_octave'])}, not {BASS_OCTAVES}")
    bass = [sum(r["by_octave"][name]["found"] for name in BASS_OCTAVES) for r in real]
    return {"val_f1": round(100 * v["f1"], 2), "val_f1_offset": round(100 * v["f1_offset"], 2),
            "real_found": round(float(np.mean(found)), 1), "real_bass_found": round(float(np.mean(bass)), 1),
            "real_extra_per_note": round(float(np.mean(extra)), 3),
            "real_extra_range": f"{min(extra):.2f}-{max(extra):.2f}"}


def run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


def run_variant(name: str, seed: int, args) -> dict:
    out = args.runs / run_name(name, seed)
    done = out / "scores.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.time()
    root = args.variants_root / name
    cfg = fine_tune_config(args.steps, seed)
    paired = segment_dataset(list_pieces(root, split="train"), cfg)
    trainer = Trainer(cfg, paired=SegmentTensors(paired, "cpu"), run_dir=out, init_from=BUNDLED, progress=False)
    trainer.fit()
    weights = export_weights(trainer.checkpoint_path, out / "export.pt", half=True, settings=bundled_decoding())
    result = {"variant": name, "seed": seed, "about": VARIANTS[name].about, "steps": trainer.step, "segments": len(paired),
              **score(weights, args.source, args.val_pieces, args.seconds), "minutes": round((time.time() - t0) / 60, 1)}
    done.write_text(json.dumps(result, indent=1))
    return result


PANELS = (("val_f1", "validation note F1"), ("real_found", "real notes: keys found of 88"),
          ("real_bass_found", "real notes: of them A0–B1 (15)"),
          ("real_extra_per_note", "real notes: extra notes per note"))


def plot_effects(rows: list[dict], path: Path) -> None:
    """A panel per score (those some run has: older runs lack the bass column), a bar per run; the band
    spans the runs of 'all' (what a second seed moves)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in PANELS if any(key in r for r in rows)]
    labels = [r["variant"] if not r.get("seed") else f"{r['variant']} (seed {r['seed']})" for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 0.45 * len(rows) + 1.5), sharey=True)
    for ax, (key, title) in zip(axes, panels):
        values = [float(r.get(key, np.nan)) for r in rows]
        ax.barh(range(len(rows)), values, color=["0.6" if not r.get("steps") else "tab:blue" for r in rows])
        same = [float(r[key]) for r in rows if r["variant"] == "all" and key in r]
        if same:
            ax.axvspan(min(same), max(same), color="tab:orange", alpha=0.3, lw=0, zorder=0)
        lo, hi = np.nanmin(values), np.nanmax(values)
        ax.set_xlim(lo - 0.3 * (hi - lo + 1e-9), hi + 0.3 * (hi - lo + 1e-9))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels)
    axes[0].invert_yaxis()
    fig.suptitle("Training-audio effects: one fine-tune each (orange: the runs of 'all')", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of the variants")
    p.add_argument("--repeat", type=int, default=1,
                   help="more runs of the variant 'all' (seeds 1..N): how far two runs of one variant differ")
    p.add_argument("--source", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--variants-root", type=Path, default=ROOT / "data" / "variants")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "effects")
    p.add_argument("--val-pieces", type=int, default=48)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--table", type=Path, default=ROOT / "figures" / "effects")
    args = p.parse_args(argv)
    runs = [(name, seed) for seed in args.seeds for name in args.variants]
    runs += [("all", seed) for seed in range(1, args.repeat + 1) if ("all", seed) not in runs]
    # every render first: a process pool forked after torch has run its threads can hang in a worker
    for name in dict.fromkeys(name for name, _ in runs):
        build_variant_corpus(args.source, args.variants_root / name, name, workers=args.threads)
    torch.set_num_threads(args.threads)
    start = args.runs / "bundled" / "scores.json"
    if not start.exists():
        start.parent.mkdir(parents=True, exist_ok=True)
        start.write_text(json.dumps({"variant": "(bundled v3, before fine-tuning)", "steps": 0,
                                     **score(BUNDLED, args.source, args.val_pieces, args.seconds)}, indent=1))
    for name, seed in runs:
        print(json.dumps(run_variant(name, seed, args)), flush=True)
    done = [args.runs / run_name(n, s) / "scores.json" for s in range(100) for n in VARIANTS]
    rows = [json.loads(path.read_text()) for path in [start] + done if path.exists()]
    write_table(rows, args.table)
    plot_effects(rows, args.table.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
