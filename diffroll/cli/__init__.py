"""The ``diffroll`` command: transcribe recordings to MIDI (and CSV, and audio), generate, inpaint.

    diffroll transcribe INPUT... -o OUTDIR [--samples K] [--notes-csv] [--sonify] [--overwrite] ...
    diffroll generate -o out.mid [--seconds S] [--seed S]          (w = -1, §4.3)
    diffroll inpaint INPUT --mask START:END[,START:END...] -o out.mid   (c_mel = -1 there, §4.4)
    diffroll train [--scale S] [--run-dir DIR] [--max-steps N] ...  (also under torchrun)

Exit status: 0 when every input was written (silent or empty audio gives an empty MIDI and a
note saying so), 1 when an input or the checkpoint failed (the other inputs are still
transcribed), 2 for a usage error (a bad option value, an output folder that is a file or not
writable, --steps above the model's T: all found before any transcription), 130 / 143 when
interrupted by SIGINT / SIGTERM (temporary files removed).

No silent wrong results:
- audio with NaN or infinite samples is refused (exit 1, naming the file, how many samples and
  where), unless ``--nonfinite zero`` replaces them by 0 (with a warning naming them);
- a truncated file (less audio than its header says) is refused, naming how much is missing,
  unless ``--truncated warn`` transcribes what decodes (with a warning);
- existing outputs are never replaced unless ``--overwrite`` is given (that input fails);
- every output is written to a temporary file and, once all of an input's outputs are done,
  linked to its name only if that name is still free (another run writing the same file meanwhile
  makes this input fail, naming the file), so a failed input leaves nothing behind; temporary
  files left by killed runs are removed by the next run into that folder;
- checkpoints carry a checksum of their weights, verified on load;
- a result depends on the seed only, not on ``--batch-size`` (every window of every sample draws
  its noise from its own generator).

Long files are streamed (read, sampled and decoded window by window; only the notes are kept), so
memory does not grow with the length of the audio (``--sonify`` too renders a minute at a time):
buffers of :data:`~diffroll.cli.commands.MMAP_THRESHOLD` or more get pages of their own (:func:`~diffroll.cli.commands.flat_heap`), so the peak
is the same for every batch of windows instead of creeping up as the heap fragments.

Modules: :mod:`.options` (argparse; no torch), :mod:`.messages` (one-line errors, exit statuses),
:mod:`.files` (inputs, outputs, atomic writes), :mod:`.commands` and :mod:`.train` (the work).
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys

from .messages import Terminated

# stdout carries results only: pyfluidsynth (imported with pretty_midi) prints where it found
# libfluidsynth there when $CI is set.
with contextlib.redirect_stdout(io.StringIO()):
    from .options import build_parser


_MAIN_PID: int | None = None  # the process that installed _terminate


def _terminate(signum, frame):
    """SIGTERM in the CLI's own process: stop like Ctrl-C (exit 143). A forked worker (a
    multiprocessing pool's, which its pool ends with SIGTERM when the work is done) inherits this
    handler: it exits at once and quietly, as it would under the default action."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # before torch is imported: --help and usage errors answer at once
    # Imported here, after parsing, only to keep torch out of `diffroll --help` and usage errors.
    from .commands import run

    global _MAIN_PID
    _MAIN_PID = os.getpid()
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals stay as they are
        return run(parser, args)
    try:
        return run(parser, args)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
