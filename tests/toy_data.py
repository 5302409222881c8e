"""A toy paired corpus for trainer tests: c_mel is a fixed, learnable function of the roll."""
import datasets
import numpy as np
import torch


def toy_rolls(n: int, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rolls = np.zeros((n, 88, frames), dtype=np.float32)
    for r in rolls:
        for _ in range(frames // 4):
            key, on = rng.integers(30, 60), rng.integers(0, frames)
            r[key, on:on + rng.integers(2, 8)] = 1
    return rolls


def toy_mels(rolls: np.ndarray) -> np.ndarray:
    """Key k lights mel bins 2k and 2k+1 (a crude fundamental), and half as much at 2k+24."""
    w = np.zeros((229, 88), dtype=np.float32)
    for k in range(88):
        w[2 * k:2 * k + 2, k] = 1.0
        if 2 * k + 25 < 229:
            w[2 * k + 24:2 * k + 26, k] = 0.5
    mel = np.einsum("mk,bkf->bmf", w, rolls)
    return (mel / max(mel.max(), 1e-6)).astype(np.float32)


def toy_segments(n: int = 16, frames: int = 64, seed: int = 0) -> datasets.Dataset:
    rolls = toy_rolls(n, frames, seed)
    ds = datasets.Dataset.from_dict({"mel": toy_mels(rolls).astype(np.float16), "roll": rolls,
                                     "piece": [f"toy{i}" for i in range(n)]})
    return ds.with_format("torch")


def toy_roll_only(n: int = 16, frames: int = 64, seed: int = 5) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"roll": toy_rolls(n, frames, seed)}).with_format("torch")
