"""Where note-with-offset F1 is lost: for the onset-matched notes of validation excerpts
(:func:`diffroll.evaluation.metrics.offset_errors`), the share whose offset is within the tolerance, too
early or too late, by the reference note's length (sustain-extended: a pedalled note lasts until
the pedal comes up).

    .venv/bin/python benchmarks/offset_diagnosis.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--pieces 24] [--max-seconds 60] [--threads 2]

A diagnosis, not a test: it prints one table (the CLI's sampler and the checkpoint's decoding settings).
"""
from __future__ import annotations

import sys

from diffroll.evaluation.diagnosis import diagnosis_setup, offset_diagnosis, offset_table


def main(argv: list[str] | None = None) -> int:
    args, pipe = diagnosis_setup(__doc__, argv)
    n, rows = offset_diagnosis(pipe, args.data, args.pieces, args.max_seconds)
    print(f"{n} validation excerpts of at most {args.max_seconds:g} s, {args.checkpoint or 'bundled model'}")
    print(offset_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
