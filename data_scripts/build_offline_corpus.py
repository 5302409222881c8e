#!/usr/bin/env python
"""Build the offline corpus (music21 scores, keyboard pieces, generated studies and pianistic pieces, rendered with FluidSynth and the procedural piano).

    python data_scripts/build_offline_corpus.py --scale cpu            # data/offline-cpu
    python data_scripts/build_offline_corpus.py --scale smoke --root /tmp/offline --cache

Needs the Debian packages libfluidsynth3, fluid-soundfont-gm, musescore-general-soundfont and
csound-soundfont. Rerunning skips everything already built. See diffroll/corpus.py.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from diffroll.corpus import segments as data
from diffroll.core.config import SCALES, get_config
from diffroll.corpus.loaders import SPLITS
from diffroll.core.paths import data_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--root", type=Path, help="corpus folder (default: data/offline-<scale>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", action="store_true", help="also build the train/validation segment cache")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="render only these splits (default: all; a trainer needs train and validation)")
    parser.add_argument("--device", default="cpu", help="where the cache's mels are computed (cpu, cuda)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    cfg = get_config(args.scale)
    root = args.root or data_dir(f"offline-{args.scale}")
    start = time.time()
    manifest = data.build_offline_corpus(root, cfg, seed=args.seed, workers=args.workers, splits=args.splits)
    for row in data.summarize([p for split in args.splits for p in data.list_pieces(root, split=split)]):
        print(f"{row['split']:>10} {row['group']:>18}: {row['pieces']:4d} renders {row['hours']:6.2f} h")
    if args.cache:
        for split in [s for s in ("train", "validation") if s in args.splits]:
            ds = data.segment_dataset(data.list_pieces(root, split=split), cfg, device=args.device)
            print(f"{split}: {len(ds)} segments cached")
    print(f"{manifest} ready in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
