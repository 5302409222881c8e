"""Training throughput of a preset: steps/s and samples/s, forward + backward + Adam, fp32 against
bf16 autocast, on this machine (random data of the preset's batch and crop; no data loading).

    .venv/bin/python benchmarks/train_throughput.py [--scale cpu] [--threads 1 2] [--steps 30]
        [--out figures/train_throughput.md]

Not a test: the numbers depend on the machine and its load (the load average is written beside them).
"""
from __future__ import annotations

import argparse
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from diffroll.core.config import get_config
from diffroll.core.model import count_parameters
from diffroll.transcription.pipeline import new_model
from diffroll.training.trainer import throughput

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", choices=("no", "yes", "both"), default="no",
                   help="time the network eager, through torch.compile, or both (compiling takes a while)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes to time (default: the preset's)")
    p.add_argument("--out", type=Path, default=ROOT / "figures" / "train_throughput.md")
    args = p.parse_args(argv)
    cfg = get_config(args.scale)
    n = count_parameters(new_model(cfg))
    lines = [
        "# Training throughput",
        "",
        f"Written by `benchmarks/train_throughput.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} before): preset `{args.scale}`, {n / 1e6:.2f} M parameters, batch "
        f"{cfg.train.batch_size} × {cfg.train.crop_frames or cfg.audio.segment_frames} frames, {args.steps} "
        "timed steps after 2 warm-up steps, random data.",
        "",
        "| device | threads | batch | compiled | precision | s/step | steps/s | samples/s |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    compiled = {"no": (False,), "yes": (True,), "both": (False, True)}[args.compile]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes or [cfg.train.batch_size]:
            for comp in compiled:
                for precision in ("fp32", "bf16"):
                    t = throughput(cfg.override(precision=precision, batch_size=batch), steps=args.steps,
                                   device=args.device, compile=comp)
                    lines.append(f"| {args.device} | {threads} | {batch} | {'yes' if comp else 'no'} | {precision} | "
                                 f"{1 / t['steps_per_s']:.3f} | {t['steps_per_s']:.2f} | {t['samples_per_s']:.1f} |")
                    print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
