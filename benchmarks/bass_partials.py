"""Why the bass is lost: how loud a low key's fundamental is beside its partials, on the real Steinway
(the 88 Iowa notes, evaluation only) and in each training timbre.

    .venv/bin/python benchmarks/bass_partials.py [--lowest 21] [--highest 59] [--seconds 1.0]

Every model in issue 28's comparison misses the keyboard's bottom (C1–B1: 2–5 of 14 real keys; A♯0 never),
and the bundled one writes the partials of A0–F1 as notes of their own. For each key one note (velocity
110, 3 s) is rendered in each training timbre (``DataConfig.soundfonts``: TimGM6mb and csound with GM
program 0, the procedural and the sampled Salamander piano with the parameters of seed 0); the Iowa
recording is the real-notes set's (``make real-piano``). The level of partial h (h = 1 … 8) is the peak of
the magnitude spectrum (Hann window, the first ``--seconds`` after the attack) within ±40 cents of
h · f0 (a piano's partials run sharp), in dB below the strongest of the eight. Prints, per octave and
timbre, the median level of the fundamental and of partials 2–3, and the most common strongest partial.
A measurement, not a test; nothing here is trained on.

``--soundboard HZ [HZ ...]`` adds, per corner, the timbres of :class:`SoundboardSettings` passed through its
high-pass (``--order``), as corpus version 6 renders 3 of 4 of their training renders: the corner range is
fitted to the Salamander column (training data), never to the Iowa one.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi

from diffroll.core.config import get_config
from diffroll.corpus.offline import render_audio
from diffroll.corpus.realpiano import load_real_notes
from diffroll.corpus.soundboard import SoundboardSettings, soundboard_highpass

ROOT = Path(__file__).resolve().parents[1]
PARTIALS = range(1, 9)
OCTAVES = (("A0–B0", 21, 23), ("C1–B1", 24, 35), ("C2–B2", 36, 47), ("C3–B3", 48, 59))


def partial_levels(wave: np.ndarray, sr: int, onset: float, pitch: int, seconds: float) -> np.ndarray:
    """dB of partials 1..8 of ``pitch`` below the strongest of them, over ``seconds`` after ``onset``."""
    start = int(onset * sr)
    part = wave[start:start + int(seconds * sr)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part)), n=8 * len(part)))
    freqs = np.fft.rfftfreq(8 * len(part), 1 / sr)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    levels = []
    for h in PARTIALS:
        lo, hi = h * f0 * 2 ** (-40 / 1200), h * f0 * 2 ** (40 / 1200)
        band = spectrum[(freqs >= lo) & (freqs <= hi)]
        levels.append(20 * np.log10(band.max() + 1e-12) if band.size and hi < sr / 2 else -np.inf)
    levels = np.array(levels)
    return levels - levels.max()


def one_note(pitch: int, seconds: float = 3.0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(110, pitch, 0.5, 0.5 + seconds))
    pm.instruments.append(piano)
    return pm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lowest", type=int, default=21)
    p.add_argument("--highest", type=int, default=59)
    p.add_argument("--seconds", type=float, default=1.0, help="of the spectrum after the attack")
    p.add_argument("--soundboard", type=float, nargs="*", default=[], metavar="HZ",
                   help="also the soundboard high-pass at these corners")
    p.add_argument("--order", type=int, default=SoundboardSettings().order, help="of the soundboard high-pass")
    args = p.parse_args(argv)
    cfg = get_config("cpu")
    sr = cfg.audio.sample_rate
    keys = range(args.lowest, args.highest + 1)
    levels: dict[str, dict[int, np.ndarray]] = {}
    real = {ref[0].pitch: (wave, ref[0].onset) for _, _, wave, ref in load_real_notes(sample_rate=sr)}
    levels["Iowa (real Steinway)"] = {k: partial_levels(real[k][0], sr, real[k][1], k, args.seconds) for k in keys if k in real}
    for timbre in cfg.data.soundfonts:
        job = {"soundfont": timbre, "seed": 0, "detune": 0.0, "sample_rate": sr, "program": 0}
        waves = {k: render_audio(job, one_note(k)) for k in keys}
        levels[timbre] = {k: partial_levels(w, sr, 0.5, k, args.seconds) for k, w in waves.items()}
        for corner in args.soundboard if timbre in SoundboardSettings().timbres else ():
            levels[f"{timbre}, soundboard {corner:g} Hz"] = {
                k: partial_levels(soundboard_highpass(w, sr, corner, args.order), sr, 0.5, k, args.seconds)
                for k, w in waves.items()}
    print(f"Partial levels in dB below the strongest of partials 1-8 (median over the octave's keys; first "
          f"{args.seconds:g} s after the attack). 'strongest': the most common strongest partial.\n")
    print("| octave | timbre | keys | fundamental | partial 2 | partial 3 | strongest |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, lo, hi in OCTAVES:
        for timbre, per_key in levels.items():
            rows = [v for k, v in per_key.items() if lo <= k <= hi]
            if not rows:
                continue
            m = np.median(np.stack(rows), axis=0)
            top = Counter(int(np.argmax(v)) + 1 for v in rows).most_common(1)[0][0]
            print(f"| {name} | {timbre} | {len(rows)} | {m[0]:.1f} | {m[1]:.1f} | {m[2]:.1f} | {top} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
