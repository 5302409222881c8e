"""The ``diffroll transcribe / generate / inpaint`` commands: one Pipeline, the settings of the
options, every input streamed window by window and written atomically; and :func:`run`, which
turns every failure into one line and an exit status."""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
import time
from pathlib import Path

import torch

from ..core.checkpoint import CheckpointError
from ..core.paths import generative_checkpoint
from ..corpus.loaders import DataError
from ..training.checks import TrainingError
from ..transcription.audio_stream import open_audio
from ..transcription.pipeline import Pipeline
from ..transcription.settings import DecodeSettings, SamplingSettings
from ..transcription.windows import SILENCE_PEAK
from .files import (check_not_stdio, check_output_file, check_output_folder, collect_inputs, existing_outputs,
                    output_paths, remove_stale_temps, write_outputs, _check_sonify, _refusal)
from .messages import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, CliError, Terminated, UsageError,
                       _error, _log_to_stderr, _printable, _say)
from .options import SAMPLING_OPTIONS

MMAP_THRESHOLD = 4 << 20  # bytes: glibc's M_MMAP_THRESHOLD for transcribing (flat_heap)


def _load(args, generative: bool = False):
    """The pipeline of --checkpoint, or of the bundled model of the command (see :mod:`diffroll.core.paths`)."""
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
    if info.samples == 0:
        return "empty audio (0 samples): wrote an empty MIDI"
    if info.samples < hop:
        return f"audio shorter than one frame ({info.samples} samples): wrote an empty MIDI"
    if not masked and info.peak < SILENCE_PEAK:
        return "silent audio: wrote an empty MIDI"
    return ""


def _transcribe_file(pipe, src: Path, paths: dict[str, Path], args, mask_spans=None) -> tuple[float, int, str]:
    """Transcribe one file (streamed) to ``paths``; returns (audio seconds, notes, remark)."""
    cfg = pipe.config
    sampling, decoding = settings(args, cfg)
    audio = open_audio(src, cfg.audio.sample_rate, args.nonfinite, args.truncated)
    if mask_spans is None:
        result = pipe.transcribe(audio, sampling, decoding, keep_roll=False, keep_samples=False,
                                 progress=_progress(args), desc=src.name)
    else:
        result = pipe.inpaint(audio, mask_spans, sampling, decoding, keep_roll=False, keep_samples=False,
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


def _one_line(err: Exception, src: Path) -> str:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return msg if str(src) in msg else f"{src}: {msg}"


def flat_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """glibc only: allocations of ``threshold`` bytes or more get pages of their own (mmap), given
    back when freed. glibc's default raises this threshold to the largest buffer freed so far (up
    to 32 MiB), so the tens of MiB the network and the mel front-end use in each batch of windows
    were carved from the heap, which fragments: the peak of the later batches crept above the
    first's, and a long file's peak above a short one's (measured: README). Returns whether set."""
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def cmd_train(args) -> int:
    """``diffroll train`` (:mod:`diffroll.cli.train`), imported when called: the trainer's data stack
    (Hugging Face datasets, pandas) would add half a second to every ``diffroll transcribe``."""
    from .train import cmd_train as train

    return train(args)


def run(parser: argparse.ArgumentParser, args) -> int:
    """Run the parsed command: every failure one line on stderr and an exit status."""
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
