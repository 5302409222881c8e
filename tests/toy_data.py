"""A toy paired corpus for trainer tests: c_mel is a fixed, learnable function of the roll."""
import datasets
import numpy as np

from diffroll.core.config import NOTE_STATE
from diffroll.core.roll import Note, notes_to_roll


def toy_rolls(n: int, frames: int, seed: int = 0, channels=NOTE_STATE) -> np.ndarray:
    """(n, 88·len(channels), frames) note-state rolls of random short notes in keys 30–59 (and a
    pedal down over a random span with a ``pedal`` channel)."""
    rng = np.random.default_rng(seed)
    rolls = []
    for _ in range(n):
        notes = []
        for _ in range(frames // 4):
            key, on = int(rng.integers(30, 60)), int(rng.integers(0, frames))
            notes.append(Note(on / 31.25, (on + int(rng.integers(2, 8))) / 31.25, key + 21, int(rng.integers(20, 127))))
        down, up = sorted(rng.integers(0, frames, 2) / 31.25)
        pedal = [(float(down), float(up))] if "pedal" in channels else None
        rolls.append(notes_to_roll(notes, 31.25, n_frames=frames, channels=channels, pedal=pedal))
    return np.stack(rolls).astype(np.float32)


def toy_mels(rolls: np.ndarray, channels=NOTE_STATE) -> np.ndarray:
    """Key k lights mel bins 2k and 2k+1 (a crude fundamental), and half as much at 2k+24, as loud
    as its velocity (the velocity rows of a note-state roll, the frame rows of a frame roll)."""
    w = np.zeros((229, 88), dtype=np.float32)
    for k in range(88):
        w[2 * k:2 * k + 2, k] = 1.0
        if 2 * k + 25 < 229:
            w[2 * k + 24:2 * k + 26, k] = 0.5
    i = list(channels).index("velocity" if "velocity" in channels else "frame")
    mel = np.einsum("mk,bkf->bmf", w, rolls[:, 88 * i:88 * (i + 1)])
    return (mel / max(mel.max(), 1e-6)).astype(np.float32)


def toy_segments(n: int = 16, frames: int = 64, seed: int = 0, channels=NOTE_STATE) -> datasets.Dataset:
    rolls = toy_rolls(n, frames, seed, channels)
    ds = datasets.Dataset.from_dict({"mel": toy_mels(rolls, channels).astype(np.float16), "roll": rolls,
                                     "piece": [f"toy{i}" for i in range(n)]})
    return ds.with_format("torch")


def toy_roll_only(n: int = 16, frames: int = 64, seed: int = 5, channels=NOTE_STATE) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"roll": toy_rolls(n, frames, seed, channels)}).with_format("torch")
