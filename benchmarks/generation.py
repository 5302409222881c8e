"""Does a checkpoint generate music? Unconditional generation (w = -1, §4.3) of K rolls, their notes
per second, polyphony, pitch and note length beside those of the corpus' validation music (MIDI,
cut to the same length), as notebook 08 measures them.

    .venv/bin/python benchmarks/generation.py [--checkpoints checkpoints/diffroll-cpu.pt ...]
        [--rolls 8] [--seconds 20.48] [--sampler ddpm] [--steps 50] [--threads 2] [--data data/offline-cpu]

The target of the bundled model (issue 28): 4-20 notes per second (real piano music: ~8).
A measurement, not a test: it prints one Markdown row per checkpoint.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from diffroll.core.roll import clip_notes, midi_notes
from diffroll.corpus.segments import list_pieces, note_statistics
from diffroll.transcription.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def corpus_music(root: Path, seconds: float, n: int) -> list:
    """The first ``seconds`` of the first ``n`` distinct validation MIDI files of an offline corpus."""
    midis = list(dict.fromkeys(p.midi for p in list_pieces(root, split="validation")))
    return [clip_notes(midi_notes(m), seconds) for m in midis[:n]]


def row(label: str, stats: dict, wall: float | None = None) -> str:
    cells = [label, f"{stats['notes_per_second']:.2f}", f"{stats['mean_polyphony']:.2f}", f"{stats['mean_pitch']:.1f}",
             f"{stats['median_length']:.3f}", "" if wall is None else f"{wall:.1f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", type=Path, nargs="+", default=[ROOT / "checkpoints" / "diffroll-cpu.pt"])
    p.add_argument("--rolls", type=int, default=8, help="generated rolls per checkpoint (seeds 0..K-1)")
    p.add_argument("--seconds", type=float, default=20.48)
    p.add_argument("--sampler", default="ddpm", choices=("ddpm", "ddim", "dpmpp"))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| notes | notes/s | mean polyphony | mean pitch | median length (s) | wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    if (args.data / "manifest.csv").is_file():
        real = corpus_music(args.data, args.seconds, 32)
        print(row(f"corpus validation music ({len(real)} pieces)", note_statistics(real, seconds=[args.seconds] * len(real))))
    for path in args.checkpoints:
        pipe = Pipeline.from_checkpoint(path)
        start, generated = time.perf_counter(), []
        for seed in range(args.rolls):
            sampling = pipe.sampling.replace(sampler=args.sampler, steps=args.steps, seed=seed)
            generated.append(pipe.generate(args.seconds, sampling, keep_roll=False, keep_samples=False,
                                           progress=False).notes)
        stats = note_statistics(generated, pipe.config.audio.fps, seconds=[args.seconds] * len(generated))
        extend = pipe.config.diffusion.extend_T
        label = f"{path.name} ({args.rolls} x {args.seconds:g} s, {args.sampler} x {args.steps}, extend_T {extend})"
        print(row(label, stats, time.perf_counter() - start), flush=True)
        per_roll = [len(n) / args.seconds for n in generated]
        print(f"<!-- notes/s per roll: {np.round(per_roll, 2).tolist()} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
