"""The ``diffroll`` command: transcribe recordings to MIDI, generate rolls, inpaint.

    diffroll transcribe INPUT... -o OUTDIR [--checkpoint PATH] [--sampler S] [--steps N] [--w W]
    diffroll generate -o out.mid [--seconds S] [--seed S]          (w = -1, §4.3)
    diffroll inpaint INPUT --mask START:END[,START:END...] -o out.mid   (c_mel = -1 there, §4.4)
    diffroll train [--scale S] [--run-dir DIR] [--max-steps N] ...  (also under torchrun)

Exit status: 0 when every input was written (silent or empty audio gives an empty MIDI and a
note saying so), 1 when an input or the checkpoint failed (the other inputs are still
transcribed), 2 for a usage error. Each output is written to a temporary file and renamed, so a
failed input never leaves a partial file behind.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from .diffusion import SAMPLERS
from .inference import DEFAULT_SAMPLER, DEFAULT_STEPS
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure that ends the command with a one-line message."""


class UsageError(CliError):
    """A bad argument found after parsing: the usage message, exit status 2."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _error(msg: str) -> None:
    print(f"diffroll: error: {msg}", file=sys.stderr, flush=True)


# --- arguments ----------------------------------------------------------------------------------

def _spans(text: str) -> list[tuple[float, float]]:
    spans = []
    for part in text.split(","):
        try:
            start, end = (float(x) for x in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad mask span {part!r}: expected START:END in seconds")
        if not 0 <= start < end:
            raise argparse.ArgumentTypeError(f"bad mask span {part!r}: need 0 <= START < END")
        spans.append((start, end))
    return spans


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _sampling_options(p: argparse.ArgumentParser, guidance: bool = True) -> None:
    g = p.add_argument_group("model and sampling")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="model checkpoint (default: the bundled checkpoints/diffroll-cpu.pt)")
    g.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                   help=f"ddpm (the paper's), ddim or dpmpp (DPM-Solver++ 2M) (default: {DEFAULT_SAMPLER})")
    g.add_argument("--steps", type=_positive_int, default=DEFAULT_STEPS,
                   help=f"sampling steps out of T (default: {DEFAULT_STEPS}; the paper: all 200)")
    if guidance:
        g.add_argument("--w", type=float, default=None,
                       help="guidance weight of Algorithm 1 (default: the checkpoint's, 0.5 in the paper)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    g.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    g.add_argument("--batch-size", type=_positive_int, default=4, help="windows sampled at once (default: 4)")
    g.add_argument("--threshold", type=float, default=None, help="x0 -> note threshold (default: 0.5)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffroll", description="DiffRoll: diffusion-based piano transcription to MIDI.",
        epilog="Exit status: 0 all written, 1 an input or the checkpoint failed, 2 usage error.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("transcribe", help="audio files or folders -> one MIDI file each",
                       description="Transcribe audio files (wav, flac, ogg, mp3, aiff; any rate, mono or "
                                   "stereo, any length) or folders of them to OUTDIR/<name>.mid.")
    t.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio file or folder (searched recursively)")
    t.add_argument("-o", "--outdir", type=Path, required=True, help="folder for the MIDI files")
    _sampling_options(t)

    g = sub.add_parser("generate", help="sample a piano roll without audio (w = -1)",
                       description="Unconditional generation (§4.3): c_mel = -1 everywhere.")
    g.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    g.add_argument("--seconds", type=float, default=20.48, help="length in seconds (default: 20.48)")
    _sampling_options(g, guidance=False)

    i = sub.add_parser("inpaint", help="transcribe, generating notes where the audio is masked",
                       description="Inpainting (§4.4): c_mel = -1 in the masked seconds.")
    i.add_argument("input", type=Path, metavar="INPUT", help="audio file")
    i.add_argument("--mask", type=_spans, required=True, metavar="START:END[,START:END...]",
                   help="seconds whose spectrogram is replaced by -1")
    i.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    _sampling_options(i)
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
    g.add_argument("--val-pieces", type=int, default=2, help="whole validation pieces scored during training")
    g.add_argument("--export-to", type=Path, default=None,
                   help="also write inference-only (EMA, float16) weights here at the end")
    s = t.add_argument_group("settings (override the preset; any other with --set NAME=VALUE)")
    for name, kind in (("mode", str), ("p", float), ("kernel_size", int), ("channels", int), ("layers", int),
                       ("max_steps", int), ("max_minutes", float), ("batch_size", int), ("lr", float),
                       ("seed", int), ("precision", str)):
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
    from .audio import AUDIO_EXTENSIONS

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


def write_midi_atomically(pm, path: Path) -> None:
    """Write to a temporary file next to ``path``, then rename: no partial file on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pm.write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(args):
    import torch

    from .checkpoint import load_pipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    return load_pipeline(args.checkpoint, device=device)


def _kwargs(args, **extra) -> dict:
    kw = dict(sampler=args.sampler, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
              progress=not args.quiet, threshold=args.threshold)
    kw.update(extra)
    return kw


def _transcribe_file(pipe, src: Path, dst: Path, args, mask_spans=None) -> tuple[float, int, str]:
    """Transcribe one file to ``dst``; returns (audio seconds, notes, remark)."""
    from .inference import SILENCE_PEAK, frames_mask, read_audio, transcribe_notes
    from .roll import notes_to_midi

    cfg = pipe.config
    wave = read_audio(src, sr=cfg.audio.sample_rate)
    seconds = len(wave) / cfg.audio.sample_rate
    frames = len(wave) // cfg.audio.hop_length
    remark = ""
    if len(wave) == 0:
        notes, remark = [], "empty audio (0 samples): wrote an empty MIDI"
    elif frames == 0:
        notes, remark = [], f"audio shorter than one frame ({len(wave)} samples): wrote an empty MIDI"
    elif mask_spans is None and np.abs(wave).max() < SILENCE_PEAK:
        notes, remark = [], "silent audio: wrote an empty MIDI"
    else:
        extra = {"w": args.w, "desc": src.name}
        if mask_spans is not None:
            mask = frames_mask(mask_spans, frames, cfg.audio.fps)
            if not mask.any():
                raise CliError(f"{src}: the mask lies outside the audio ({seconds:.2f} s)")
            extra["mask"] = mask
        notes, _ = transcribe_notes(pipe, wave, **_kwargs(args, **extra))
    write_midi_atomically(notes_to_midi(notes), dst)
    return seconds, len(notes), remark


def _summary(files: int, failed: int, audio_s: float, wall_s: float) -> None:
    rtf = wall_s / audio_s if audio_s > 0 else float("nan")
    _say(f"{files} file{'s' if files != 1 else ''} written, {failed} failed: {audio_s:.1f} s of audio "
         f"in {wall_s:.1f} s (real-time factor {rtf:.3f})")


# --- commands -----------------------------------------------------------------------------------

def cmd_transcribe(args) -> int:
    jobs, errors = collect_inputs(args.inputs)
    for e in errors:
        _error(e)
    if not jobs:
        _error("nothing to transcribe")
        return EXIT_FAILED
    pipe = _load(args)
    start = time.perf_counter()
    done, failed, audio_s = 0, len(errors), 0.0
    claimed: dict[Path, Path] = {}
    for src, name in jobs:
        dst = args.outdir / name
        if dst in claimed:
            _error(f"{src}: its output {dst} is already the output of {claimed[dst]}; skipped")
            failed += 1
            continue
        claimed[dst] = src
        try:
            seconds, n, remark = _transcribe_file(pipe, src, dst, args)
        except Exception as err:  # one bad input must not stop the others
            _error(_one_line(err, src))
            failed += 1
            continue
        done += 1
        audio_s += seconds
        _say(f"{src} -> {dst} ({n} notes, {seconds:.1f} s){': ' + remark if remark else ''}")
    _summary(done, failed, audio_s, time.perf_counter() - start)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def cmd_generate(args) -> int:
    from .inference import transcribe_notes
    from .roll import notes_to_midi

    if args.seconds <= 0:
        raise CliError(f"--seconds must be positive, got {args.seconds}")
    pipe = _load(args)
    sr = pipe.config.audio.sample_rate
    start = time.perf_counter()
    silence = np.zeros(int(round(args.seconds * sr)), dtype=np.float32)
    notes, _ = transcribe_notes(pipe, silence, **_kwargs(args, w=-1.0, desc="generate"))
    write_midi_atomically(notes_to_midi(notes), args.output)
    _say(f"generated {args.output} ({len(notes)} notes, {args.seconds:.1f} s)")
    _summary(1, 0, args.seconds, time.perf_counter() - start)
    return EXIT_OK


def cmd_inpaint(args) -> int:
    pipe = _load(args)
    start = time.perf_counter()
    try:
        seconds, n, remark = _transcribe_file(pipe, args.input, args.output, args, mask_spans=args.mask)
    except Exception as err:
        _error(_one_line(err, args.input))
        return EXIT_FAILED
    _say(f"{args.input} -> {args.output} ({n} notes, {seconds:.1f} s){': ' + remark if remark else ''}")
    _summary(1, 0, seconds, time.perf_counter() - start)
    return EXIT_OK


def cmd_train(args) -> int:
    """Build the data (rank 0 first under torchrun), train, checkpoint, optionally export."""
    import os

    import torch
    import torch.distributed as dist

    from .config import get_config
    from .data import training_data
    from .model import count_parameters
    from .paths import runs_dir
    from .train import Trainer, pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("mode", "p", "kernel_size", "channels", "layers", "max_steps",
                                               "max_minutes", "batch_size", "lr", "seed", "precision", "dilation")}
    overrides.update(args.settings)  # --set NAME=VALUE wins over the named options
    try:
        cfg = get_config(args.scale, dataset=args.dataset, path=None if args.data is None else str(args.data),
                         **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from err
    device = pick_device(args.device)
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
                          val_pieces=data["val_waves"], device=str(device), init_from=args.init_from)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoint import CheckpointError

    from .loaders import DataError

    commands = {"transcribe": cmd_transcribe, "generate": cmd_generate, "inpaint": cmd_inpaint, "train": cmd_train}
    try:
        return commands[args.command](args)
    except UsageError as err:
        parser.error(str(err))
    except (CliError, CheckpointError, DataError) as err:
        _error(str(err).splitlines()[0])
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
