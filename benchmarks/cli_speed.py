"""The whole command, start-up included, on one file: ``diffroll transcribe`` (bf16 where the CPU has it,
and fp32) against basic-pitch's own CLI in its environment, run alternately, pairwise, on the same audio.

    .venv/bin/python benchmarks/cli_speed.py [--seconds 120] [--repeats 3] [--threads 2] [--data data/offline-cpu]
        [--also-steps 5] [--files 12]

The audio: piano test renders in FluidR3_GM joined to ``--seconds``; with ``--files N`` cut into N files of
equal length in one folder (diffroll is given the folder, basic-pitch the N files: one process each). Prints the CPU, then per command the
median wall seconds and CPU seconds (user + system of the child) and their ratios to basic-pitch's.
The target of issue 28: no slower than basic-pitch, in fp32 too. A measurement, not a test.
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from diffroll.core.config import get_config
from diffroll.corpus.segments import load_pieces
from diffroll.evaluation.peers import peer_python

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return f"{name}, {'with' if 'avx512_bf16' in flags or 'amx_bf16' in flags else 'without'} native bf16"


def test_audio(data: Path, seconds: float, path: Path) -> Path:
    cfg = get_config("cpu")
    sr = cfg.audio.sample_rate
    waves, total = [], 0
    for piece in load_pieces(data, "piano_test", ["FluidR3_GM"], None, None, cfg=cfg):
        waves.append(piece.wave)
        total += len(piece.wave)
        if total >= seconds * sr:
            break
    sf.write(path, np.concatenate(waves)[: int(seconds * sr)], sr)
    return path


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--files", type=int, default=1, help="the audio as this many files of equal length")
    p.add_argument("--also-steps", type=int, nargs="*", default=[],
                   help="more diffroll rows with --steps N (bf16 where native, and fp32): e.g. an earlier default")
    args = p.parse_args(argv)
    bp = peer_python("basic-pitch").with_name("basic-pitch")
    diffroll = Path(sys.executable).with_name("diffroll")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = test_audio(args.data, args.seconds, tmp / "piano.wav")
        inputs = [wav]
        if args.files > 1:
            wave, sr = sf.read(wav, dtype="float32")
            (tmp / "in").mkdir()
            inputs = [tmp / "in" / f"piano{i:02d}.wav" for i in range(args.files)]
            for path, part in zip(inputs, np.array_split(wave, args.files)):
                sf.write(path, part, sr)
            wav = tmp / "in"  # diffroll reads the folder
        commands = {
            "diffroll (auto: bf16 where native)": [str(diffroll), "transcribe", str(wav), "-o", str(tmp / "a"),
                                                   "--overwrite", "-q", "--threads", str(args.threads)],
            "diffroll --precision fp32": [str(diffroll), "transcribe", str(wav), "-o", str(tmp / "b"), "--overwrite",
                                          "-q", "--threads", str(args.threads), "--precision", "fp32"],
            "basic-pitch": [str(bp), str(tmp / "c"), *map(str, inputs)],
        }
        for n in args.also_steps:
            for precision in ("auto", "fp32"):
                commands[f"diffroll --steps {n}" + (" --precision fp32" if precision == "fp32" else "")] = [
                    str(diffroll), "transcribe", str(wav), "-o", str(tmp / f"s{n}{precision}"), "--overwrite", "-q",
                    "--threads", str(args.threads), "--precision", precision, "--steps", str(n)]
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
        for r in range(args.repeats):
            for label, cmd in commands.items():
                if label == "basic-pitch":
                    for old in (tmp / "c").glob("*"):
                        old.unlink()
                    (tmp / "c").mkdir(exist_ok=True)
                times[label].append(timed(cmd))
    print(f"{args.seconds:g} s of piano audio in {args.files} file(s), {args.repeats} runs each, alternating; {cpu_name()}; "
          f"diffroll --threads {args.threads}")
    print("| command | wall s (median) | CPU s (median) | wall / basic-pitch | CPU / basic-pitch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    ref_wall = statistics.median(w for w, _ in times["basic-pitch"])
    ref_cpu = statistics.median(c for _, c in times["basic-pitch"])
    for label, runs in times.items():
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {wall / ref_wall:.2f} | {cpu / ref_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
