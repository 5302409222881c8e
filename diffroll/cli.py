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
buffers of :data:`MMAP_THRESHOLD` or more get pages of their own (:func:`flat_heap`), so the peak
is the same for every batch of windows instead of creeping up as the heap fragments.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from .core.config import SAMPLERS
from .transcription.settings import COMBINES, PRECISIONS, DecodeSettings, SamplingSettings

# Argument parsing must not import torch (``diffroll --help`` answers at once): the settings
# modules are torch-free, and every sampling default is read from SamplingSettings.
NONFINITE_POLICIES = ("error", "zero")  # audio_stream.NONFINITE_POLICIES
TRUNCATED_POLICIES = ("error", "warn")  # audio_stream.TRUNCATED_POLICIES
DEFAULTS = {f.name: f.default for f in fields(SamplingSettings)}  # the one place: transcription.settings
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
MAX_GENERATE_SECONDS = 24 * 3600.0
MAX_W = 2.0  # --w: guidance from 0 (none) to this; the paper's 0.5, measured from 0 to 1.5 (README)
MAX_SEED = 2 ** 63 - 1
MMAP_THRESHOLD = 4 << 20  # bytes: glibc's M_MMAP_THRESHOLD for transcribing (flat_heap)
EPILOG = ("Exit status: 0 every input written; 1 an input or the checkpoint failed (the other inputs are still "
          "done; nothing is written for a failed input, NaN / infinite audio is refused unless --nonfinite zero, "
          "truncated audio unless --truncated warn, and existing outputs are kept unless --overwrite, also when "
          "another run writes them meanwhile); 2 usage error, found before any work (option values, an output "
          "folder that is a file or not writable, --steps above the model's T); 130 / 143 interrupted (SIGINT / "
          "SIGTERM). Long audio is streamed: memory does not grow with its length.")


class CliError(Exception):
    """A failure that ends the command with a one-line message."""


class UsageError(CliError):
    """A bad argument found after parsing: the usage message, exit status 2."""


def _printable(msg: str, stream) -> str:
    """``msg`` as ``stream`` can print it: file names that are not valid in its encoding (e.g.
    non-UTF-8 bytes, which Python keeps as surrogates) as backslash escapes, not a crash."""
    enc = getattr(stream, "encoding", None) or "utf-8"
    return msg.encode(enc, errors="backslashreplace").decode(enc, errors="replace")


def _say(msg: str) -> None:
    print(_printable(msg, sys.stdout), flush=True)


def _error(msg: str) -> None:
    print(_printable(f"diffroll: error: {msg}", sys.stderr), file=sys.stderr, flush=True)


class _StderrLog(logging.Handler):
    """The package's warnings (NaN samples replaced, a stuck note cut) as ``diffroll: warning: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(_printable(f"diffroll: {record.levelname.lower()}: {record.getMessage()}", sys.stderr),
              file=sys.stderr, flush=True)


def _log_to_stderr() -> None:
    logger = logging.getLogger("diffroll")
    if not any(isinstance(h, _StderrLog) for h in logger.handlers):
        handler = _StderrLog(logging.WARNING)
        logger.addHandler(handler)


# --- arguments ----------------------------------------------------------------------------------

def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _guidance(text: str) -> float:
    value = _finite(text)
    if not 0 <= value <= MAX_W:
        raise argparse.ArgumentTypeError(f"must be from 0 (no guidance) to {MAX_W:g} (the paper's: 0.5), got {text}; "
                                         "w = -1 (no audio) is `diffroll generate`")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1 = {MAX_SEED}, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _threshold(text: str) -> float:
    value = _finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1 (x̂0 rolls are 0 or 1), got {text}")
    return value


def _milliseconds(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _seconds(text: str) -> float:
    value = _finite(text)
    if not 0 < value <= MAX_GENERATE_SECONDS:
        raise argparse.ArgumentTypeError(f"must be > 0 and at most {MAX_GENERATE_SECONDS:.0f} (24 hours), got {text}")
    return value


def _spans(text: str) -> list[tuple[float, float]]:
    spans = []
    for part in text.split(","):
        try:
            start, end = (float(x) for x in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad mask span {part!r}: expected START:END in seconds")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise argparse.ArgumentTypeError(f"bad mask span {part!r}: START and END must be finite seconds")
        if not 0 <= start < end:
            raise argparse.ArgumentTypeError(f"bad mask span {part!r}: need 0 <= START < END")
        spans.append((start, end))
    return spans


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _sampling_options(p: argparse.ArgumentParser, guidance: bool = True, samples: bool = True,
                      default_model: str = "the bundled piano transcriber checkpoints/diffroll-cpu.pt") -> None:
    g = p.add_argument_group("model and sampling")
    g.add_argument("--checkpoint", type=Path, default=None, help=f"model checkpoint (default: {default_model})")
    g.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help=f"ddpm (the paper's), ddim or dpmpp (DPM-Solver++ 2M) (default: {DEFAULTS['sampler']})")
    g.add_argument("--steps", type=_positive_int, default=None,
                   help=f"sampling steps, at most the model's T (default: {DEFAULTS['steps']}; the paper: all 200)")
    if guidance:
        g.add_argument("--w", type=_guidance, default=None,
                       help=f"guidance weight of Algorithm 1, from 0 (none) to {MAX_W:g} (default: the checkpoint's, "
                            "0.5 in the paper and the bundled model)")
    if samples:
        g.add_argument("--samples", type=_positive_int, default=None, metavar="K",
                       help="draw K transcriptions (different noise, batched together) and read the notes from "
                            "the mean of their rolls (or keep the notes a majority holds: --combine vote); each "
                            "note's confidence is the share of samples holding it (same pitch, onset within "
                            "50 ms), or for a calibrated checkpoint (the bundled one) the chance that such a note "
                            "is right (default: 1, confidence 1.0). K samples cost K times the time")
        g.add_argument("--combine", choices=COMBINES, default=None,
                       help="how K > 1 samples become one transcription: mean (their x̂0 averaged, then read) or "
                            "vote (each read, the notes more than K/2 hold kept) (default: the checkpoint's, mean)")
    g.add_argument("--seed", type=_seed, default=None,
                   help=f"noise seed, 0 to 2**63 - 1 (default: {DEFAULTS['seed']})")
    g.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's, one per core; on a machine busy with other work "
                        "1 is often much faster)")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="the network's arithmetic: bf16 (autocast; the sampler stays fp32) or fp32; auto: bf16 on "
                        "CUDA and on CPUs with native bf16 (AVX-512 BF16, AMX), where it is faster (default: "
                        f"{DEFAULTS['precision']})")
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"rolls (windows x samples) sampled per network call (default: {DEFAULTS['batch_size']}); "
                        "the result does not "
                        "depend on it (every window and sample draws its own noise)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (there is none either when stderr is not a terminal)")
    d = p.add_argument_group("reading notes from the roll")
    d.add_argument("--frame-threshold", "--threshold", dest="frame_threshold", type=_threshold, default=None,
                   metavar="X",
                   help="x̂0 frame value above which a key sounds (default: the checkpoint's; 0.5 in the paper; the "
                        "bundled model's was tuned on the validation split)")
    d.add_argument("--onset-threshold", type=_threshold, default=None, metavar="X",
                   help="x̂0 onset value above which a note starts, for note-state models (default: the "
                        "checkpoint's, tuned on the validation split for the bundled model; frame-only models have no onsets)")
    d.add_argument("--offset-threshold", type=_threshold, default=None, metavar="X",
                   help="note-state models: a note started by an onset lasts while x̂0's frame value stays above X "
                        "(default: the checkpoint's; unset: the frame threshold)")
    d.add_argument("--restrike-threshold", type=_threshold, default=None, metavar="X",
                   help="note-state models: an onset inside a sounding note re-strikes it (ends it, starts the next) "
                        "only when it peaks above X (default: the checkpoint's; unset: every onset)")
    d.add_argument("--pedal-threshold", type=_threshold, default=None, metavar="X",
                   help="models with a pedal channel: a note that ends while x̂0's pedal value is above X lasts until "
                        "it falls below (the sustain pedal holds it) (default: the checkpoint's)")
    d.add_argument("--no-pedal", dest="use_pedal", action="store_false",
                   help="read each note's end from its own frame values only: no pedal channel (models with one) and "
                        "no guess of the notes a pedal held (models with one fitted, like the bundled model)")
    d.add_argument("--min-note-ms", type=_milliseconds, default=None, metavar="MS",
                   help="minimum length of a note read without an onset. Note-state models (frame + onset "
                        "rolls): a frame run that no onset starts becomes a note when it lasts at least MS "
                        "(default: the checkpoint's min_frames_without_onset; none: never). Frame-only models (no onsets at all): notes shorter than MS are "
                        "dropped (default: 0, none)")


def _output_options(p: argparse.ArgumentParser, where: str) -> None:
    o = p.add_argument_group("outputs")
    o.add_argument("--notes-csv", action="store_true",
                   help=f"also write {where}.csv: onset_s,offset_s,pitch,velocity,confidence, one row a note")
    o.add_argument("--sonify", action="store_true",
                   help=f"also write {where}.sonified.wav: the transcription played by FluidSynth, to listen "
                        "to beside the original")
    o.add_argument("--soundfont", default=None,
                   help="soundfont for --sonify: FluidR3_GM, TimGM6mb, MuseScore_General, csound or a "
                        ".sf2/.sf3 file (default: FluidR3_GM when installed, else TimGM6mb)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: refuse, and that input fails)")


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nonfinite", choices=NONFINITE_POLICIES, default="error",
                   help="audio with NaN or infinite samples: error (default) refuses the file (exit 1), naming "
                        "the bad samples; zero replaces them by 0 and warns")
    p.add_argument("--truncated", choices=TRUNCATED_POLICIES, default="error",
                   help="a file with less audio than its header says (cut off while copying or downloading): error "
                        "(default) refuses it (exit 1), naming how much is missing; warn transcribes what decodes "
                        "(the missing end as silence) and warns")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffroll", description="DiffRoll: diffusion-based piano transcription to MIDI.",
        epilog="Exit status: 0 all written, 1 an input or the checkpoint failed, 2 usage error.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"diffroll {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("transcribe", help="audio files or folders -> one MIDI file each",
                       description="Transcribe audio files (wav, flac, ogg, mp3, aiff; any rate, mono or "
                                   "stereo, any length: streamed) or folders of them to OUTDIR/<name>.mid.",
                       epilog=EPILOG)
    t.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio file or folder (searched recursively)")
    t.add_argument("-o", "--outdir", type=Path, required=True, help="folder for the MIDI files")
    _input_options(t)
    _sampling_options(t)
    _output_options(t, "OUTDIR/<name>")

    g = sub.add_parser("generate", help="sample a piano roll without audio (w = -1)",
                       description="Unconditional generation (§4.3): c_mel = -1 everywhere.", epilog=EPILOG)
    g.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    g.add_argument("--seconds", type=_seconds, default=20.48, help="length in seconds (default: 20.48; at most 24 h)")
    _sampling_options(g, guidance=False, samples=False, default_model="checkpoints/diffroll-generative-cpu.pt, the bundled model that generates")
    _output_options(g, "<output without .mid>")

    i = sub.add_parser("inpaint", help="transcribe, generating notes where the audio is masked",
                       description="Inpainting (§4.4): c_mel = -1 in the masked seconds.", epilog=EPILOG)
    i.add_argument("input", type=Path, metavar="INPUT", help="audio file")
    i.add_argument("--mask", type=_spans, required=True, metavar="START:END[,START:END...]",
                   help="seconds whose spectrogram is replaced by -1")
    i.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    _input_options(i)
    _sampling_options(i, default_model="checkpoints/diffroll-generative-cpu.pt, the bundled model that generates")
    _output_options(i, "<output without .mid>")
    _train_parser(sub)
    return parser


def _setting(text: str) -> tuple[str, object]:
    """NAME=VALUE, VALUE read as JSON when it parses (numbers, lists, null), else as a string."""
    import json

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"bad setting {text!r}: expected NAME=VALUE, e.g. roll_channels='[\"frame\"]'")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _train_parser(sub) -> None:
    t = sub.add_parser(
        "train", help="train DiffRoll (or the discriminative baseline); resumable; runs under torchrun",
        description="Train with the settings of notebooks/03_train.ipynb. Rerunning with the same --run-dir "
                    "resumes. Under `torchrun --nproc_per_node N -m diffroll train ...` N processes train "
                    "data-parallel (gloo on CPU, nccl on GPUs): each takes its part of a global batch of "
                    "N x --batch-size.")
    g = t.add_argument_group("run")
    g.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="cpu", help="preset (default: cpu)")
    g.add_argument("--run-dir", type=Path, default=None, help="checkpoints and logs (default: runs/<scale>-<mode>)")
    g.add_argument("--dataset", choices=("offline", "maestro", "maps"), default="offline")
    g.add_argument("--data", type=Path, default=None,
                   help="corpus root (default data/offline-<scale>, built when missing) or the MAESTRO/MAPS folder")
    g.add_argument("--init-from", type=Path, default=None, help="start from this checkpoint's weights (fine-tuning)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads per process")
    g.add_argument("--workers", type=_positive_int, default=2, help="processes rendering the corpus (default: 2)")
    g.add_argument("--val-pieces", type=_count, default=2, help="whole validation pieces scored during training")
    g.add_argument("--export-to", type=Path, default=None,
                   help="also write inference-only (EMA, float16) weights here at the end")
    s = t.add_argument_group("settings (override the preset; any other with --set NAME=VALUE)")
    for name, kind in (("mode", str), ("p", float), ("kernel_size", int), ("channels", int), ("layers", int),
                       ("max_steps", int), ("max_minutes", float), ("batch_size", int), ("lr", float),
                       ("seed", _seed), ("precision", str)):
        s.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                       help="0: no time limit" if name == "max_minutes" else None)
    s.add_argument("--dilation", type=int, nargs="+", default=None, help="e.g. 1 2 for the paper's [1, 2, 1, 2, ...]")
    s.add_argument("--set", dest="settings", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                   help="any config setting, e.g. --set roll_channels='[\"frame\"]' --set crop_frames=256")


# --- inputs and outputs -------------------------------------------------------------------------

def collect_inputs(inputs: list[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(audio file, output name relative to OUTDIR) for each input, and one error per bad input.

    A folder contributes its audio files (recursively, by extension), named by their path inside
    the folder; a file is taken as given, whatever its extension (libsndfile decides).
    """
    from .core.audio import AUDIO_EXTENSIONS

    jobs, errors = [], []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder has no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            jobs += [(p, p.relative_to(path).with_suffix(".mid")) for p in found]
        elif path.is_file():
            jobs.append((path, Path(path.with_suffix(".mid").name)))
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors


def output_paths(midi: Path, args) -> dict[str, Path]:
    """The files written for one transcription: the MIDI, and the CSV / sonified WAV next to it."""
    out = {"midi": midi}
    if args.notes_csv:
        out["csv"] = midi.with_suffix(".csv")
    if args.sonify:
        out["wav"] = midi.with_suffix(".sonified.wav")
    return out


def check_output_folder(folder: Path, what: str = "output folder") -> None:
    """UsageError naming ``folder`` unless it is a writable folder or can be created as one (its
    nearest existing ancestor is a writable folder). Creates nothing."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise UsageError(f"{what} {folder} is not a folder{where}: give a folder with -o")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError("permission denied")
    except OSError as err:
        raise UsageError(f"{what} {folder} is not writable ({existing}: {err.strerror or err}): "
                         "choose another folder with -o") from err


STDIO = "-"


def check_not_stdio(path: Path, what: str) -> None:
    """UsageError for ``-``: audio is read from files (streamed, with seeks), not from a pipe."""
    if str(path) == STDIO:
        raise UsageError(f"{what} '-': standard input and output are not supported: save the audio to a file "
                         "and give its path (e.g. `ffmpeg -i URL in.wav`), and write to a file with -o")


def check_output_file(path: Path) -> None:
    """UsageError unless ``path`` can be a file written in a writable folder."""
    check_not_stdio(path, "-o")
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder: give the MIDI file to write, e.g. {path / 'out.mid'}")
    check_output_folder(path.parent, f"the folder of -o {path},")


def existing_outputs(paths: dict[str, Path], overwrite: bool) -> list[Path]:
    """The outputs that exist and would be replaced (none when ``overwrite``)."""
    return [] if overwrite else [p for p in paths.values() if p.exists() or p.is_symlink()]


def _refusal(existing: list[Path]) -> str:
    names = ", ".join(str(p) for p in existing)
    return f"{names} already exist{'s' if len(existing) == 1 else ''}: not overwritten (pass --overwrite to replace)"


def _check_sonify(args) -> None:
    """A usage error for a soundfont that is not there, before any work (FluidSynth is checked too)."""
    if not getattr(args, "sonify", False):
        return
    from .transcription.outputs import SONIFY_RATE, default_soundfont
    from .corpus.render import PianoSynth, RenderError, soundfont_path

    args.soundfont = args.soundfont or default_soundfont()
    try:
        soundfont_path(args.soundfont)
    except RenderError as err:
        raise UsageError(f"--soundfont: {err}") from err
    try:
        PianoSynth(args.soundfont, SONIFY_RATE).close()  # FluidSynth itself, and the soundfont loads
    except RenderError as err:
        raise CliError(f"--sonify: {err}") from err


TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")  # .NAME.PID.tmp: an output being written by process PID


def _temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or not a pid): leave its files alone
    return True


def remove_stale_temps(folders) -> list[Path]:
    """Remove the temporary outputs (``.NAME.PID.tmp``) that processes no longer running left in
    ``folders`` (a run killed while writing); returns them."""
    removed = []
    for folder in {Path(f) for f in folders}:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            m = TEMP.match(entry.name)
            if m and int(m[1]) != os.getpid() and entry.is_file() and not _alive(int(m[1])):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _taken(path: Path) -> CliError:
    return CliError(f"{path} was written by another run meanwhile: not overwritten (pass --overwrite to replace, "
                    "or write to another folder with -o)")


def _claim(tmp: Path, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` only if no file has it: a hard link fails when
    the name exists, so a run that wrote ``path`` meanwhile is never replaced (where the file system
    has no hard links: an exclusive create, then a copy)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise _taken(path) from None
    except OSError:
        pass
    try:
        with open(tmp, "rb") as src, open(path, "xb") as dst:
            shutil.copyfileobj(src, dst)
    except FileExistsError:
        raise _taken(path) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_outputs(result, paths: dict[str, Path], soundfont: str | None = None, overwrite: bool = False) -> None:
    """The MIDI (and CSV, WAV) of a :class:`~diffroll.transcription.pipeline.Transcription`, each written to a
    temporary file; given their names only when all are written, so a failure leaves none of
    them. Without ``overwrite`` a name that exists by then (another run) fails this input, and the
    outputs of it already named are removed."""
    temps = {kind: _temp_of(p) for kind, p in paths.items()}
    named: list[Path] = []
    try:
        for kind, tmp in temps.items():
            tmp.parent.mkdir(parents=True, exist_ok=True)
            if kind == "midi":
                result.write_midi(tmp)
            elif kind == "csv":
                result.write_csv(tmp)
            else:
                result.sonify(tmp, soundfont)
        for kind, tmp in temps.items():
            if overwrite:
                os.replace(tmp, paths[kind])
            else:
                _claim(tmp, paths[kind])
                named.append(paths[kind])
    except BaseException:
        for path in named:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _load(args, generative: bool = False):
    """The pipeline of --checkpoint, or of the bundled model of the command (see :mod:`diffroll.core.paths`)."""
    import torch

    from .core.paths import generative_checkpoint
    from .transcription.pipeline import Pipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available: use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or (generative_checkpoint() if generative else None)
    pipe = Pipeline.from_checkpoint(checkpoint, device=device)
    T = pipe.config.diffusion.T
    if args.steps is not None and args.steps > T:
        raise UsageError(f"--steps {args.steps} is more than the model's T = {T} diffusion steps: "
                         f"give --steps {T} or fewer")
    return pipe


SAMPLING_OPTIONS = ("sampler", "steps", "w", "samples", "combine", "seed", "batch_size", "precision")


def settings(args, config) -> tuple[SamplingSettings, DecodeSettings]:
    """The sampling and decoding settings of the options: the checkpoint's, changed by those given."""
    given = {name: getattr(args, name) for name in SAMPLING_OPTIONS if getattr(args, name, None) is not None}
    decoding = DecodeSettings.of(config, frame_threshold=args.frame_threshold, onset_threshold=args.onset_threshold,
                                 min_note_ms=args.min_note_ms, offset_threshold=args.offset_threshold,
                                 restrike_threshold=args.restrike_threshold, pedal_threshold=args.pedal_threshold,
                                 use_pedal=args.use_pedal)
    return SamplingSettings.of(config).replace(**given), decoding


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _remark(info, hop: int, masked: bool = False) -> str:
    """Why a transcription is empty by construction (empty, too short or silent audio)."""
    from .transcription.windows import SILENCE_PEAK

    if info.samples == 0:
        return "empty audio (0 samples): wrote an empty MIDI"
    if info.samples < hop:
        return f"audio shorter than one frame ({info.samples} samples): wrote an empty MIDI"
    if not masked and info.peak < SILENCE_PEAK:
        return "silent audio: wrote an empty MIDI"
    return ""


def _transcribe_file(pipe, src: Path, paths: dict[str, Path], args, mask_spans=None) -> tuple[float, int, str]:
    """Transcribe one file (streamed) to ``paths``; returns (audio seconds, notes, remark)."""
    from .transcription.audio_stream import open_audio
    from .transcription.windows import frames_mask

    cfg = pipe.config
    sampling, decoding = settings(args, cfg)
    mask = None
    audio = open_audio(src, cfg.audio.sample_rate, args.nonfinite, args.truncated)
    if mask_spans is not None:
        frames = audio.info.samples // cfg.audio.hop_length
        mask = frames_mask(mask_spans, frames, cfg.audio.fps)
        if not mask.any():
            raise CliError(f"{src}: the mask lies outside the audio ({audio.info.seconds:.2f} s)")
    result = pipe.transcribe(audio, sampling, decoding, mask=mask, keep_roll=False, keep_samples=False,
                             progress=_progress(args), desc=src.name)
    write_outputs(result, paths, getattr(args, "soundfont", None), args.overwrite)
    return audio.info.seconds, len(result.notes), _remark(audio.info, cfg.audio.hop_length, mask_spans is not None)


def _done(src, paths: dict[str, Path], n: int, seconds: float, remark: str) -> None:
    _say(f"{src} -> {', '.join(str(p) for p in paths.values())} ({n} notes, {seconds:.1f} s)"
         f"{': ' + remark if remark else ''}")


def _summary(files: int, failed: int, audio_s: float, wall_s: float) -> None:
    rtf = f" (real-time factor {wall_s / audio_s:.3f})" if audio_s > 0 else ""
    _say(f"{files} file{'s' if files != 1 else ''} written, {failed} failed: {audio_s:.1f} s of audio "
         f"in {wall_s:.1f} s{rtf}")


# --- commands -----------------------------------------------------------------------------------

def _plan(jobs: list[tuple[Path, Path]], args) -> tuple[list[tuple[Path, dict[str, Path]]], list[str]]:
    """(input, its outputs) to transcribe, and one error per input refused before any work: an
    output that is another input's, or that exists (without --overwrite)."""
    planned, errors = [], []
    claimed: dict[Path, Path] = {}
    for src, name in jobs:
        paths = output_paths(args.outdir / name, args)
        dst = paths["midi"]
        if dst in claimed:
            errors.append(f"{src}: its output {dst} is already the output of {claimed[dst]}; skipped")
            continue
        claimed[dst] = src
        existing = existing_outputs(paths, args.overwrite)
        if existing:
            errors.append(f"{src}: {_refusal(existing)}")
            continue
        planned.append((src, paths))
    return planned, errors


def cmd_transcribe(args) -> int:
    for path in args.inputs:
        check_not_stdio(path, "INPUT")
    check_output_folder(args.outdir)
    _check_sonify(args)
    jobs, errors = collect_inputs(args.inputs)
    planned, refused = _plan(jobs, args)
    pipe = _load(args) if jobs else None  # its usage errors (--steps above T) before any input's error
    for e in errors + refused:
        _error(e)
    if not jobs:
        _error("nothing to transcribe")
        return EXIT_FAILED
    failed = len(errors) + len(refused)
    if not planned:
        return EXIT_FAILED
    remove_stale_temps(p.parent for _, paths in planned for p in paths.values())
    start = time.perf_counter()
    done, audio_s = 0, 0.0
    for src, paths in planned:
        try:
            seconds, n, remark = _transcribe_file(pipe, src, paths, args)
        except Exception as err:  # one bad input must not stop the others
            _error(_one_line(err, src))
            failed += 1
            continue
        done += 1
        audio_s += seconds
        _done(src, paths, n, seconds, remark)
    _summary(done, failed, audio_s, time.perf_counter() - start)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _single_output(args) -> dict[str, Path]:
    """The outputs of generate / inpaint, checked before any work."""
    check_output_file(args.output)
    if hasattr(args, "input"):
        check_not_stdio(args.input, "INPUT")
    _check_sonify(args)
    paths = output_paths(args.output, args)
    existing = existing_outputs(paths, args.overwrite)
    if existing:
        raise CliError(_refusal(existing))
    remove_stale_temps(p.parent for p in paths.values())
    return paths


def cmd_generate(args) -> int:
    paths = _single_output(args)
    pipe = _load(args, generative=True)
    start = time.perf_counter()
    sampling, decoding = settings(args, pipe.config)
    result = pipe.generate(args.seconds, sampling, decoding, keep_roll=False, keep_samples=False,
                           progress=_progress(args))
    write_outputs(result, paths, args.soundfont, args.overwrite)
    _say(f"generated {', '.join(str(p) for p in paths.values())} ({len(result.notes)} notes, {args.seconds:.1f} s)")
    _summary(1, 0, args.seconds, time.perf_counter() - start)
    return EXIT_OK


def cmd_inpaint(args) -> int:
    paths = _single_output(args)
    pipe = _load(args, generative=True)
    start = time.perf_counter()
    try:
        seconds, n, remark = _transcribe_file(pipe, args.input, paths, args, mask_spans=args.mask)
    except Exception as err:
        _error(_one_line(err, args.input))
        return EXIT_FAILED
    _done(args.input, paths, n, seconds, remark)
    _summary(1, 0, seconds, time.perf_counter() - start)
    return EXIT_OK


def cmd_train(args) -> int:
    """Build the data (rank 0 first under torchrun), train, checkpoint, optionally export."""
    import os

    import torch
    import torch.distributed as dist

    from .core.config import get_config
    from .corpus.segments import training_data
    from .core.model import count_parameters
    from .core.paths import runs_dir
    from .training.trainer import Trainer, check_config, pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("mode", "p", "kernel_size", "channels", "layers", "max_steps",
                                               "max_minutes", "batch_size", "lr", "seed", "precision", "dilation")}
    overrides.update(args.settings)  # --set NAME=VALUE wins over the named options
    try:
        cfg = get_config(args.scale, dataset=args.dataset, path=None if args.data is None else str(args.data),
                         **overrides)
        check_config(cfg)  # every setting, before any work
    except (TypeError, ValueError) as err:
        raise UsageError(str(err).splitlines()[0]) from err
    try:
        device = pick_device(args.device)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {args.device}: {str(err).splitlines()[0]}") from err
    if args.init_from is not None and not args.init_from.is_file():
        raise UsageError(f"--init-from {args.init_from}: no such checkpoint file")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    run_dir = args.run_dir or runs_dir(f"{args.scale}-{cfg.train.mode}")
    try:
        if rank == 0:  # rank 0 builds the corpus and the segment cache; the others then read them
            data = training_data(cfg, root=args.data, val_pieces=args.val_pieces, workers=args.workers,
                                 device=str(device))
        if dist.is_initialized():
            dist.barrier()
        if rank != 0:
            data = training_data(cfg, root=args.data, val_pieces=0, build=False)
        trainer = Trainer(cfg, paired=data["paired"], run_dir=run_dir, val_segments=data["val_segments"],
                          val_pieces=data["val_waves"], device=str(device), init_from=args.init_from,
                          progress=sys.stderr.isatty())
        if rank == 0:
            _say(f"run {run_dir}: {cfg.train.mode}, {count_parameters(trainer.model) / 1e6:.2f} M parameters, "
                 f"{len(data['paired'])} segments, device {device} x {trainer.world}, from step {trainer.step}")
        trainer.fit()
        if rank == 0:
            _say(f"trained to step {trainer.step} ({trainer.wall_seconds / 60:.1f} min of training in total); "
                 f"checkpoint {trainer.checkpoint_path}")
            if args.export_to:
                _say(f"exported {trainer.save_weights(args.export_to, half=True)}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return EXIT_OK


def _one_line(err: Exception, src: Path) -> str:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return msg if str(src) in msg else f"{src}: {msg}"


def flat_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """glibc only: allocations of ``threshold`` bytes or more get pages of their own (mmap), given
    back when freed. glibc's default raises this threshold to the largest buffer freed so far (up
    to 32 MiB), so the tens of MiB the network and the mel front-end use in each batch of windows
    were carved from the heap, which fragments: the peak of the later batches crept above the
    first's, and a long file's peak above a short one's (measured: README). Returns whether set."""
    import ctypes
    import ctypes.util

    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as SIGINT is: temporary files removed, one line, exit 143."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # before torch is imported: --help and usage errors answer at once
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals stay as they are
        return _run(parser, args)
    try:
        return _run(parser, args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(parser: argparse.ArgumentParser, args) -> int:
    from .core.checkpoint import CheckpointError
    from .corpus.loaders import DataError
    from .training.trainer import TrainingError

    _log_to_stderr()
    commands = {"transcribe": cmd_transcribe, "generate": cmd_generate, "inpaint": cmd_inpaint, "train": cmd_train}
    if args.command != "train":
        flat_heap()
    try:
        return commands[args.command](args)
    except UsageError as err:
        parser.error(_printable(str(err), sys.stderr))
    except (CliError, CheckpointError, DataError, TrainingError) as err:
        _error(str(err).splitlines()[0])
        return EXIT_FAILED
    except Terminated:
        _error("terminated (SIGTERM)")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
