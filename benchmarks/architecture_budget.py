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
"""
from __future__ import annotations

import argparse
import time

from diffroll.core.paths import runs_dir
from diffroll.corpus import segments as data
from diffroll.lab import experiments as ex


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidate", required=True, help="index or label of one of the notebook's candidates")
    p.add_argument("--scale", default="cpu", choices=["smoke", "cpu"])
    p.add_argument("--minutes", type=float, required=True, help="training wall-clock minutes (the notebook's `minutes`)")
    p.add_argument("--max-steps", type=int, default=None, help="the notebook's `max_steps` (default: smoke 30, cpu none)")
    p.add_argument("--snapshot-every", type=int, default=None, help="the notebook's `snapshot_every` (default: smoke 10, cpu 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 each for two candidates on 2 cores)")
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
    run = ex.train_for_minutes(cfg, runs_dir(f"{args.scale}/architecture"), ex.run_name(label), args.minutes,
                               paired=paired, progress=True)
    last = run.history[-1]
    print(f"{label}: {last['step']} steps in {last['wall_seconds'] / 60:.1f} training minutes "
          f"({time.time() - t0:.0f} s this call); run {run.checkpoint.parent}")


if __name__ == "__main__":
    main()
