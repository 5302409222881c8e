"""The options of the ``diffroll`` command (argparse): their types, checks and defaults. Imports no
torch, so ``diffroll --help`` and usage errors answer at once: the settings modules are
torch-free, and every sampling default is read from SamplingSettings."""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import fields
from pathlib import Path

from .. import __version__
from ..core.config import SAMPLERS
from ..transcription.settings import COMBINES, PRECISIONS, SamplingSettings

# Argument parsing must not import torch (``diffroll --help`` answers at once): the settings
# modules are torch-free, and every sampling default is read from SamplingSettings.
NONFINITE_POLICIES = ("error", "zero")  # audio_stream.NONFINITE_POLICIES


TRUNCATED_POLICIES = ("error", "warn")  # audio_stream.TRUNCATED_POLICIES


DEFAULTS = {f.name: f.default for f in fields(SamplingSettings)}  # the one place: transcription.settings


MAX_GENERATE_SECONDS = 24 * 3600.0


MAX_W = 2.0  # --w: guidance from 0 (none) to this; the paper's 0.5, measured from 0 to 1.5 (README)


MAX_SEED = 2 ** 63 - 1


EPILOG = ("Exit status: 0 every input written; 1 an input or the checkpoint failed (the other inputs are still "
          "done; nothing is written for a failed input, NaN / infinite audio is refused unless --nonfinite zero, "
          "truncated audio unless --truncated warn, and existing outputs are kept unless --overwrite, also when "
          "another run writes them meanwhile); 2 usage error, found before any work (option values, an output "
          "folder that is a file or not writable, --steps above the model's T); 130 / 143 interrupted (SIGINT / "
          "SIGTERM). Long audio is streamed: memory does not grow with its length.")


SAMPLING_OPTIONS = ("sampler", "steps", "w", "samples", "combine", "seed", "batch_size", "precision")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")


def _guidance(text: str) -> float:
    value = _finite(text)
    if not 0 <= value <= MAX_W:
        raise argparse.ArgumentTypeError(f"must be from 0 (no guidance) to {MAX_W:g} (the paper's: 0.5), got {text}; "
                                         "w = -1 (no audio) is `diffroll generate`")
    return value


def _seed(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1 = {MAX_SEED}, got {text}")
    return value


def _count(text: str) -> int:
    value = _whole(text)
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
    value = _whole(text)
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
