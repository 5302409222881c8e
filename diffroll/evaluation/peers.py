"""The peers, on the same audio as DiffRoll: basic-pitch and Transkun V2.

- basic-pitch (Bittner et al., ICASSP 2022): a small instrument-agnostic transcriber over a
  harmonic CQT; ONNX backend, no TensorFlow.
- Transkun V2 (Yan & Duan, 2024): a piano specialist (a transformer with a semi-CRF over note
  intervals, trained on MAESTRO); its wheel ships its weights. Slow on a CPU (real-time factor
  ~7 on 2 cores), so its MIDI is cached by audio content.

Each runs in its own virtual environment under ``.cache/peer-<name>`` (made on first use, from the
package registry), so the project's pins stay untouched: Transkun gets the project's CPU
torch pin and, instead of ``torchaudio`` (whose build does not load against that torch), a
stand-in for the one function it calls, ``torchaudio.functional.melscale_fbanks``.

:func:`run_peer` writes each piece as a WAV at the corpus's rate, runs the peer's driver over all
of them in one process (model loading is timed apart from each file), and reads its MIDI with
:func:`diffroll.core.roll.midi_notes` (no sustain extension: the peers write their own offsets).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from ..core.paths import cache_dir, runs_dir
from ..core.roll import Note, midi_notes

TORCH_PIN = "torch==2.13.0"  # the project's CPU build (an unpinned torch pulls a CUDA build)

BASIC_PITCH_DRIVER = r"""
import json, sys, time
import onnxruntime as ort
threads = int(sys.argv[2])
_Session = ort.InferenceSession
def session(path, sess_options=None, **kw):
    opts = sess_options or ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return _Session(path, sess_options=opts, **kw)
ort.InferenceSession = session
t0 = time.perf_counter()
from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model, predict
model = Model(ICASSP_2022_MODEL_PATH)
load = time.perf_counter() - t0
jobs = json.load(open(sys.argv[1]))
predict(jobs[0][0], model)  # warm-up: numba compiles resampy's kernels on the first call
times = []
for wav, mid in jobs:
    t = time.perf_counter()
    _, midi, _ = predict(wav, model)
    times.append(time.perf_counter() - t)
    midi.write(mid)
print(json.dumps({"load_seconds": load, "times": times, "model": str(ICASSP_2022_MODEL_PATH)}))
"""

TRANSKUN_DRIVER = r"""
import json, sys, time
from importlib.resources import files
import moduleconf, soundfile as sf, soxr, torch
threads = int(sys.argv[2])
torch.set_num_threads(threads)
torch.set_grad_enabled(False)
t0 = time.perf_counter()
from transkun.Data import writeMidi
pretrained = files("transkun") / "pretrained"
conf = moduleconf.parseFromFile(str(pretrained / "2.0.conf"))["Model"]
model = conf.module.TransKun(conf=conf.config)
state = torch.load(str(pretrained / "2.0.pt"), map_location="cpu", weights_only=False)
model.load_state_dict(state.get("best_state_dict", state.get("state_dict")), strict=False)
model.eval()
load = time.perf_counter() - t0
times = []
for wav, mid in json.load(open(sys.argv[1])):
    t = time.perf_counter()
    audio, fs = sf.read(wav, dtype="float32", always_2d=True)
    if fs != model.fs:
        audio = soxr.resample(audio, fs, model.fs)
    notes = model.transcribe(torch.from_numpy(audio), discardSecondHalf=False)
    writeMidi(notes).write(mid)
    times.append(time.perf_counter() - t)
print(json.dumps({"load_seconds": load, "times": times, "model": "transkun 2.0.1 (pretrained/2.0.pt)"}))
"""

# torchaudio.functional.melscale_fbanks (HTK mel scale, no normalisation), the one torchaudio
# function Transkun calls (transkun/Util.py, MelSpectrum): triangular filters over linear bins.
TORCHAUDIO_STANDIN = r'''
"""A stand-in for torchaudio in DiffRoll's Transkun environment: only functional.melscale_fbanks."""
from . import functional  # noqa: F401
'''
TORCHAUDIO_FUNCTIONAL = r'''
"""torchaudio.functional.melscale_fbanks (mel_scale="htk", norm=None), for Transkun only."""
import math
import torch


def melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk"):
    if norm is not None or mel_scale != "htk":
        raise NotImplementedError("DiffRoll's torchaudio stand-in has only norm=None, mel_scale='htk'")
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min, m_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    f_pts = 700.0 * (10 ** (torch.linspace(m_min, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))
'''


@dataclass(frozen=True)
class Peer:
    """A peer transcriber: its label in tables, how its environment is installed, its driver."""

    name: str
    label: str
    installs: tuple[tuple[str, ...], ...]  # pip install arguments, one command each, in order
    driver: str  # a script: argv[1] jobs.json [(wav, mid), ...], argv[2] threads; prints JSON times
    cache_midi: bool  # keep its MIDI by audio content under runs/peers/<name> (slow peers)
    min_seconds: float = 0.0  # audio it pads to a whole segment (Transkun: 16 s): shorter pieces are joined


PEERS = {
    "basic-pitch": Peer("basic-pitch", "basic-pitch (ICASSP 2022)",
                        (("--no-deps", "basic-pitch"),
                         ("onnxruntime", "librosa", "mir_eval", "pretty_midi", "resampy<0.4.3", "scikit-learn",
                          "scipy", "typing_extensions")),
                        BASIC_PITCH_DRIVER, cache_midi=False),
    "transkun": Peer("transkun", "Transkun V2 (2024)",
                     ((TORCH_PIN,), ("--no-deps", "transkun==2.0.1"),
                      ("ncls", "pretty-midi", "scipy", "mir-eval", "tqdm", "moduleconf", "soxr", "soundfile", "numpy")),
                     TRANSKUN_DRIVER, cache_midi=True, min_seconds=16.0),
}


class PeerError(RuntimeError):
    """A peer could not be installed or run."""


def peer_python(name: str) -> Path:
    """The Python of the peer's own environment, ``.cache/peer-<name>`` (installed when missing)."""
    peer = PEERS[name]
    venv = cache_dir() / f"peer-{name}"
    py = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        return py
    print(f"installing {name} into {venv} (its own environment; once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for args in peer.installs:
        proc = subprocess.run([str(py), "-m", "pip", "install", "-q", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise PeerError(f"pip install {' '.join(args)} failed in {venv}: "
                            f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    if name == "transkun":
        site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        (site / "torchaudio").mkdir(exist_ok=True)
        (site / "torchaudio" / "__init__.py").write_text(TORCHAUDIO_STANDIN)
        (site / "torchaudio" / "functional.py").write_text(TORCHAUDIO_FUNCTIONAL)
    (venv / ".installed").touch()
    return py


def audio_key(wave: np.ndarray, sample_rate: int) -> str:
    """A name for a piece's audio by its content: the same audio, the same cached MIDI."""
    return hashlib.sha1(np.ascontiguousarray(wave, dtype=np.float32).tobytes() + str(sample_rate).encode()).hexdigest()[:20]


def join_pieces(pieces: Sequence[tuple], sample_rate: int) -> tuple[tuple, list[float]]:
    """The pieces end to end as one ``(name, group, wave, [])`` piece, and each one's start in seconds."""
    starts = np.cumsum([0] + [len(p[2]) for p in pieces[:-1]]) / sample_rate
    wave = np.concatenate([np.asarray(p[2], np.float32) for p in pieces])
    return ("+".join(p[0] for p in pieces), pieces[0][1], wave, []), [float(s) for s in starts]


def split_joined(row: dict, pieces: Sequence[tuple], starts: Sequence[float], sample_rate: int) -> list[dict]:
    """A joined piece's row back into one row per piece: each note to the piece its onset falls
    in, times from that piece's start; the wall time shared by audio length."""
    ends = list(starts[1:]) + [float("inf")]
    total = sum(len(p[2]) for p in pieces) / sample_rate
    rows = []
    for (name, group, wave, _), start, end in zip(pieces, starts, ends):
        est = [n._replace(onset=n.onset - start, offset=min(n.offset, end) - start) for n in row["est"]
               if start <= n.onset < end]
        seconds = len(wave) / sample_rate
        rows.append(dict(name=name, group=group, seconds=seconds, wall=row["wall"] * seconds / total, est=est))
    return rows


def run_peer(name: str, pieces: Sequence[tuple], sample_rate: int, threads: int = 2,
             cache: Path | None = None) -> tuple[list[dict], dict]:
    """The peer on each ``(name, group, wave, ref_notes)``: one row per piece (name, group,
    seconds, wall, ``est`` notes), and the run's info (model load seconds, model).

    A peer with ``cache_midi`` keeps ``<cache>/<audio key>.mid`` and its wall time, and runs
    only on the pieces it has not seen (``cache``: ``runs/peers/<name>``). When every piece is
    shorter than the peer's ``min_seconds`` (Transkun pads each file to a 16-s segment), the
    pieces are transcribed joined end to end in one file (:func:`join_pieces`) and split back by
    onset (:func:`split_joined`): the same audio, without the padding's cost.
    """
    peer = PEERS[name]
    if len(pieces) > 1 and all(len(p[2]) / sample_rate < peer.min_seconds for p in pieces):
        joined, starts = join_pieces(pieces, sample_rate)
        rows, info = run_peer(name, [joined], sample_rate, threads, cache)
        return split_joined(rows[0], pieces, starts, sample_rate), {**info, "joined": len(pieces)}
    cache = Path(cache) if cache is not None else runs_dir(f"peers/{name}")
    keys = [audio_key(wave, sample_rate) for _, _, wave, _ in pieces]
    times_path = cache / "times.json"
    cached = json.loads(times_path.read_text()) if peer.cache_midi and times_path.is_file() else {}
    todo = [i for i, k in enumerate(keys) if not (peer.cache_midi and k in cached and (cache / f"{k}.mid").is_file())]
    info: dict = {"load_seconds": None, "cached": len(pieces) - len(todo)}
    with tempfile.TemporaryDirectory(prefix=f"peer-{name}-") as tmp:
        tmp = Path(tmp)
        jobs = []
        for i in todo:
            sf.write(tmp / f"{i}.wav", pieces[i][2], sample_rate)
            jobs.append((str(tmp / f"{i}.wav"), str(tmp / f"{i}.mid")))
        walls = {}
        if jobs:
            (tmp / "jobs.json").write_text(json.dumps(jobs))
            (tmp / "driver.py").write_text(peer.driver)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
            proc = subprocess.run([str(peer_python(name)), str(tmp / "driver.py"), str(tmp / "jobs.json"),
                                   str(threads)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise PeerError(f"{name} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            info.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            walls = dict(zip(todo, info["times"]))
            if peer.cache_midi:
                cache.mkdir(parents=True, exist_ok=True)
                for i, (_, mid) in zip(todo, jobs):
                    shutil.copy(mid, cache / f"{keys[i]}.mid")
                    cached[keys[i]] = walls[i]
                times_path.write_text(json.dumps(cached, indent=0))
        rows = []
        for i, (piece, group, wave, _) in enumerate(pieces):
            mid = cache / f"{keys[i]}.mid" if peer.cache_midi else Path(jobs[todo.index(i)][1])
            est: list[Note] = midi_notes(mid, sustain=False)
            rows.append(dict(name=piece, group=group, seconds=len(wave) / sample_rate,
                             wall=walls.get(i, cached.get(keys[i])), est=est))
    return rows, info
