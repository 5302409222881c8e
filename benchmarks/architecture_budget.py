"""Train notebook 12's candidates for a long equal budget, one process each, side by side.

Notebook 12 trains its candidates one after another; at a budget of hours that is hours times the
candidates. This trains one candidate with the notebook's exact config (``budget_configs``: same
run folder, same snapshots), so two candidates can train at once, each on one of the two cores,
for the same wall-clock minutes; the notebook, run afterwards with the same ``minutes`` and
``snapshot_every``, finds the runs finished and only scores them:

    .venv/bin/python benchmarks/architecture_budget.py --candidate 0 --minutes 95 --threads 1 &
    .venv/bin/python benchmarks/architecture_budget.py --candidate 2 --minutes 95 --threads 1 &
    wait
    .venv/bin/papermill --cwd notebooks notebooks/12_architecture.ipynb runs/notebooks/12_long.ipynb \\
        -p scale cpu -p minutes 95 -y 'candidates: ["DiffWave on the mel (the bundled layout)", "key-shared 32 ch on the HCQT"]'

A stopped run resumes from its last checkpoint (rerun the same command). Candidates: the notebook's
defaults (``experiments.architecture_candidates``), by index or label.

A long run (issue 28's item 5) is the same command with a larger ``--minutes``, resumable across sessions;
``--score-every N`` then scores, without training, the run's snapshots every N steps and its last weights
as notebook 12 does (validation note F1 at the best thresholds, ``experiments.best_thresholds``), fits the
log-time trend (``lab.curves``) and writes ``curve.json`` in the run folder:

    .venv/bin/python benchmarks/architecture_budget.py --candidate 1 --minutes 1200 --threads 1 &   # stop any time
    .venv/bin/python benchmarks/architecture_budget.py --candidate 1 --minutes 1200 --score-every 1000 --test --threads 2
"""
from __future__ import annotations

import argparse
import json
import math
import time

from diffroll.core.paths import data_dir, runs_dir
from diffroll.corpus import segments as data
from diffroll.corpus.realpiano import load_real_notes
from diffroll.evaluation.metrics import summarise
from diffroll.evaluation.runners import evaluate_pieces, evaluate_real_notes
from diffroll.lab import experiments as ex
from diffroll.lab.curves import fit_log_trend
from diffroll.transcription.pipeline import Pipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidate", required=True, help="index or label of one of the notebook's candidates")
    p.add_argument("--scale", default="cpu", choices=["smoke", "cpu"])
    p.add_argument("--minutes", type=float, required=True, help="training wall-clock minutes (the notebook's `minutes`)")
    p.add_argument("--max-steps", type=int, default=None, help="the notebook's `max_steps` (default: smoke 30, cpu none)")
    p.add_argument("--snapshot-every", type=int, default=None, help="the notebook's `snapshot_every` (default: smoke 10, cpu 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 each for two candidates on 2 cores)")
    p.add_argument("--score-every", type=int, default=None,
                   help="no training: score the run's snapshots every N steps and its last weights (notebook 12's way)")
    p.add_argument("--n-val", type=int, default=6, help="validation pieces of the scores (notebook 12's n_val)")
    p.add_argument("--val-seconds", type=float, default=30.0, help="their first seconds (notebook 12's val_seconds)")
    p.add_argument("--sampler", default="dpmpp", help="of the scores (notebook 12's `sampler`)")
    p.add_argument("--sampler-steps", type=int, default=5, help="of the scores (notebook 12's `sampler_steps`)")
    p.add_argument("--trend-minutes", type=float, default=95.0,
                   help="with --score-every: also the trend fitted on the curve's first N minutes (the equal-budget comparison's)")
    p.add_argument("--test", action="store_true", help="with --score-every: the last weights, at their best validation "
                   "thresholds, on the whole piano test split and the real notes too (notebook 12's table row)")
    args = p.parse_args()

    candidates = ex.architecture_candidates(args.scale)
    labels = list(candidates)
    index = int(args.candidate) if args.candidate.isdigit() else None
    label = labels[index] if index is not None and index < len(labels) else args.candidate
    if label not in candidates:
        raise SystemExit(f"unknown candidate {label!r}; the notebook's are: " + "; ".join(
            f"{i}: {name}" for i, name in enumerate(labels)))
    cfg = ex.budget_configs(args.scale, {label: candidates[label]}, args.minutes, args.max_steps,
                            args.snapshot_every, args.seed)[label]

    ex.setup(args.seed, args.threads)
    root = ex.corpus(args.scale, splits=("train", "validation", "piano_test"))
    paired = data.training_data(cfg, root=root, val_pieces=0, build=False)["paired"]
    t0 = time.time()
    run = ex.train_for_minutes(cfg, runs_dir(f"{args.scale}/architecture"), ex.run_name(label),
                               0 if args.score_every else args.minutes, paired=paired, progress=True)
    last = run.history[-1]
    print(f"{label}: {last['step']} steps in {last['wall_seconds'] / 60:.1f} training minutes "
          f"({time.time() - t0:.0f} s this call); run {run.checkpoint.parent}")
    if args.score_every:
        score_curve(run, root, cfg, args)


def score_curve(run, root, cfg, args) -> None:
    """Validation note F1 (best thresholds) of every ``--score-every``-th snapshot and the last weights,
    notebook 12's sampling (``--sampler``, ``--sampler-steps``, the seed); the log-time trend of the curve,
    and the one fitted on its first ``--trend-minutes`` (the equal-budget comparison's) to see whether it held."""
    val = ex.curve_validation(root, cfg, args.n_val, args.val_seconds)
    sampling = Pipeline.from_config(cfg).sampling.replace(sampler=args.sampler, steps=args.sampler_steps, seed=args.seed)
    chosen = [(step, seconds, path) for step, seconds, path in ex.snapshots(run) if step % args.score_every == 0]
    points, best = [], None
    for step, seconds, path in chosen:
        best = ex.best_thresholds(Pipeline.from_checkpoint(path), val, sampling)
        points.append((step, seconds / 60, best["f1"]))
        print(f"step {step}: {seconds / 60:.1f} min, validation note F1 {points[-1][2]:.3f}", flush=True)
    last = run.history[-1]
    if not points or last["step"] > points[-1][0]:
        best = ex.best_thresholds(run.pipeline, val, sampling)
        points.append((last["step"], last["wall_seconds"] / 60, best["f1"]))
        print(f"last weights, step {last['step']}: {points[-1][1]:.1f} min, validation note F1 {points[-1][2]:.3f}")
    bundled = Pipeline.from_checkpoint()
    bundled_sampling = bundled.sampling.replace(sampler=args.sampler, steps=args.sampler_steps, seed=args.seed)
    bundled_f1 = ex.best_thresholds(bundled, val, bundled_sampling)["f1"]
    curve = [(m, f1) for _, m, f1 in points]
    trend = fit_log_trend(curve)
    early = [(m, f1) for m, f1 in curve if m <= args.trend_minutes + 0.5]
    report = {"run": str(run.checkpoint.parent), "points": points, "bundled_f1": bundled_f1,
              "trend": {"a": trend.a, "b": trend.b, "from_minutes": trend.start, "points": trend.points,
                        "gain_per_doubling": trend.b * math.log(2), "hours_to_bundled": trend.minutes_to(bundled_f1) / 60}}
    print(f"the bundled model on the same pieces: {bundled_f1:.3f}; trend from {trend.start:.0f} min "
          f"({trend.points} points): {trend.b * math.log(2):+.3f} per doubling, the bundled model's F1 at "
          f"{trend.minutes_to(bundled_f1) / 60:.1f} h")
    if len(early) >= 4:
        first = fit_log_trend(early)
        report[f"trend_at_{args.trend_minutes:g}_min"] = {"a": first.a, "b": first.b, "predicted_at_end": first.at(curve[-1][0]),
                                     "measured_at_end": curve[-1][1]}
        print(f"the trend of the first {args.trend_minutes:g} min predicted {first.at(curve[-1][0]):.3f} at {curve[-1][0]:.0f} min; "
              f"measured {curve[-1][1]:.3f}")
    if args.test:
        report["test"] = score_test(run, root, cfg, sampling, best)
    out = run.checkpoint.parent / "curve.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


def score_test(run, root, cfg, sampling, best: dict) -> dict:
    """The last weights at their best validation thresholds (``best``) on the whole piano test split
    (note / offset / velocity F1, the Iowa group, missed re-strikes) and the 88 real notes, as notebook 12's table."""
    pipe = ex.with_thresholds(run.pipeline, best)
    scored = evaluate_pieces(pipe, data.load_pieces(root, "piano_test", None, None, None, cfg=cfg), sampling)
    groups = summarise(scored)
    overall = groups.pop("all")
    row = {"onset_threshold": best["onset_threshold"], "frame_threshold": best["frame_threshold"],
           "note_f1": overall["f1"], "offset_f1": overall["f1_offset"], "velocity_f1": overall["f1_velocity"],
           "iowa_f1": groups["iowa"]["f1"] if "iowa" in groups else None,
           "missed_restrikes": overall["missed_restrikes"], "rtf": overall["rtf"]}
    if (data_dir("real_notes") / "notes.csv").is_file():
        real = evaluate_real_notes(pipe, load_real_notes(sample_rate=cfg.audio.sample_rate), sampling)
        row.update(real_found=real["found"], real_extra=real["extra_per_note"], real_missed=real["missed"],
                   real_by_octave=real["by_octave"])
    print("piano test split and real notes:", json.dumps({k: v for k, v in row.items() if k != "real_by_octave"}))
    return row


if __name__ == "__main__":
    main()
