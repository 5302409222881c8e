"""Plots: rolls, mels, the schedule and the forward process (Eq. 1), inpainting (masked spans outlined in red, Fig. 5), corpus and generation statistics, training
histories and score tables.

Every ``plot_*`` returns a matplotlib Figure and writes it to ``path`` when one is given
(PNG, 120 dpi). Nothing here trains or samples a model; trajectories of Algorithm 1 are
:mod:`diffroll.lab.trajectory` (and its ipywidgets scrubber :mod:`diffroll.lab.widget`).

Rolls may have several channels of 88 keys (:mod:`diffroll.core.roll`: frame, onset, velocity). A
roll is drawn as its frame channel, with its onsets marked as cyan ticks when it has an onset
channel (:func:`show_roll`); :func:`plot_channels` draws every channel. ``channels=None`` reads
the channels from the number of rows: 88 is the paper's frame roll, 264 the note-state roll.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..core.config import LOWEST_MIDI, N_KEYS, NOTE_STATE
from ..core.roll import channel_rows

DPI = 120
ROLL_CMAP = "magma"
ONSET_COLOR = "#7df9ff"
PITCH_RANGE = (LOWEST_MIDI - 0.5, LOWEST_MIDI + N_KEYS - 0.5)


def _save(fig, path) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")


# --- training history ---------------------------------------------------------------------------

def plot_history(history: list[dict], path=None):
    """Loss vs step and, when present, validation loss and validation note F1 vs step.

    ``history`` is :meth:`diffroll.training.trainer.Trainer.fit`'s list: rows with ``loss`` (training) and
    rows with ``val_loss`` / ``val_note_f1`` (validation), each with its ``step``.
    """
    def series(key):
        rows = [(r["step"], r[key]) for r in history if key in r and r[key] is not None]
        return (np.array([s for s, _ in rows]), np.array([v for _, v in rows])) if rows else None

    loss, val_loss, f1 = series("loss"), series("val_loss"), series("val_note_f1")
    n = 1 + (f1 is not None)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 3.6), squeeze=False)
    ax = axes[0, 0]
    if loss is not None:
        ax.plot(*loss, lw=1, alpha=0.8, label="train loss (Eq. 3)")
    if val_loss is not None:
        ax.plot(*val_loss, "o-", ms=3, label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 loss")
    if loss is not None and (loss[1] > 0).all():
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if f1 is not None:
        ax = axes[0, 1]
        ax.plot(*f1, "o-", ms=3, color="C2", label="validation note F1")
        f1o = series("val_note_f1_offset")
        if f1o is not None:
            ax.plot(*f1o, "s--", ms=3, color="C3", label="note-with-offset F1")
        ax.set_xlabel("step")
        ax.set_ylabel("F1")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- rolls and mels -----------------------------------------------------------------------------

def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def roll_channels(roll, channels: Sequence[str] | None = None) -> tuple[str, ...]:
    """The channels of a roll: ``channels`` when given, else ("frame",) for 88 rows and the
    note-state channels (frame, onset, velocity) for 264."""
    rows = np.shape(roll)[0]
    if channels is None:
        if rows == N_KEYS:
            return ("frame",)
        if rows == N_KEYS * len(NOTE_STATE):
            return tuple(NOTE_STATE)
        raise ValueError(f"a roll of {rows} rows: say which channels it holds (channels=...)")
    channels = tuple(channels)
    if rows != N_KEYS * len(channels):
        raise ValueError(f"a roll of {rows} rows cannot hold the channels {list(channels)}")
    return channels


def channel(roll, name: str = "frame", channels: Sequence[str] | None = None) -> np.ndarray:
    """The (88, frames) rows of one channel of a roll (see :func:`roll_channels`)."""
    roll = _np(roll)
    return roll[channel_rows(roll_channels(roll, channels), name)]


def onset_points(roll, fps: float, channels: Sequence[str] | None = None, threshold: float = 0.5) -> np.ndarray:
    """(n, 2) (time s, MIDI pitch) of the rising edges of the onset channel above ``threshold``
    (empty when the roll has no onset channel)."""
    if "onset" not in roll_channels(roll, channels):
        return np.zeros((0, 2))
    on = channel(roll, "onset", channels) > threshold
    key, frame = np.nonzero(on & ~np.pad(on, ((0, 0), (1, 0)))[:, :-1])
    return np.column_stack([frame / fps, key + LOWEST_MIDI]).astype(float)


def show_roll(roll, ax=None, fps: float = 31.25, title: str | None = None, vmin=0.0, vmax=1.0,
              cmap=ROLL_CMAP, colorbar: bool = False, channels: Sequence[str] | None = None,
              onsets: bool = True):
    """A roll or posteriorgram on a time (s) × MIDI pitch axis: its frame channel, and (with
    ``onsets`` and an onset channel) its onsets as cyan ticks, kept as ``ax.onset_marks``."""
    roll = _np(roll)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    frame = channel(roll, "frame", channels)
    extent = (0, frame.shape[1] / fps, *PITCH_RANGE)
    im = ax.imshow(frame, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap,
                   interpolation="nearest")
    if onsets and "onset" in roll_channels(roll, channels):
        points = onset_points(roll, fps, channels)
        ax.onset_marks = ax.scatter(points[:, 0], points[:, 1], marker="|", s=30, linewidths=1.2,
                                    color=ONSET_COLOR, label="onset")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.03)
    return im


def show_mel(mel, ax=None, fps: float = 31.25, title: str | None = None):
    """c_mel (n_mels, frames) in [0, 1]; frames masked with -1 show as white."""
    mel = _np(mel)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    shown = np.ma.masked_less(mel, 0)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    im = ax.imshow(shown, origin="lower", aspect="auto", extent=(0, mel.shape[1] / fps, 0, mel.shape[0]),
                   vmin=0, vmax=1, cmap=cmap, interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title)
    return im


def plot_rolls(rolls: Sequence, titles: Sequence[str], fps: float = 31.25, path=None, ncols: int = 1,
               vmin=0.0, vmax=1.0, suptitle: str | None = None, channels: Sequence[str] | None = None,
               onsets: bool = True):
    """Several rolls in a grid (each as :func:`show_roll` draws it)."""
    n = len(rolls)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 2.4 * nrows), squeeze=False)
    for ax, roll, title in zip(axes.flat, rolls, titles):
        show_roll(roll, ax, fps, title, vmin=vmin, vmax=vmax, channels=channels, onsets=onsets)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_channels(roll, fps: float = 31.25, channels: Sequence[str] | None = None, title: str = "", path=None):
    """Every channel of a roll (frame, onset, velocity) as its own panel, one above the other."""
    roll = _np(roll)
    names = roll_channels(roll, channels)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.2 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        rows = channel(roll, name, names)
        ax.imshow(rows, origin="lower", aspect="auto", extent=(0, rows.shape[1] / fps, *PITCH_RANGE),
                  vmin=0, vmax=1, cmap=ROLL_CMAP, interpolation="nearest")
        ax.set_title(f"{name} channel", fontsize=9)
        ax.set_ylabel("MIDI pitch")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


def shade_spans(ax, spans_s: Sequence[tuple[float, float]], color: str = "tab:green", alpha: float = 0.18,
                label: str | None = None) -> None:
    """Shade time spans (seconds) of an axis, e.g. where the sustain pedal is down."""
    for k, (a, b) in enumerate(spans_s):
        ax.axvspan(a, b, color=color, alpha=alpha, lw=0, label=label if k == 0 else None)


def plot_piece(mel, roll, fps: float = 31.25, channels: Sequence[str] | None = None,
               pedal: Sequence[tuple[float, float]] = (), title: str = "", path=None):
    """c_mel above the roll (frame channel with onsets), the sustain pedal's down spans (seconds)
    shaded in green on the roll and drawn as a strip below it."""
    mel, roll = _np(mel), _np(roll)
    seconds = roll.shape[1] / fps
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 3, 0.5]})
    show_mel(mel, axes[0], fps, "c_mel")
    show_roll(roll, axes[1], fps, "x_roll (notes held by the pedal last until it is released)", channels=channels)
    visible = [(a, min(b, seconds)) for a, b in pedal if a < seconds]
    shade_spans(axes[1], visible, label="pedal down")
    shade_spans(axes[2], visible, alpha=0.9)
    axes[2].set_yticks([])
    axes[2].set_ylabel("pedal", rotation=0, ha="right", va="center")
    axes[2].set_xlim(0, seconds)
    axes[2].set_xlabel("time (s)")
    for ax in axes[:2]:
        ax.set_xlabel("")
    if visible:
        axes[1].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- the schedule and the forward process (Eq. 1) ------------------------------------------------

def plot_schedule(diffusion, path=None):
    """α_t, ᾱ_t and the two weights of Eq. 1 (√ᾱ_t on x_roll, √(1−ᾱ_t) on ε) against t."""
    t = np.arange(1, diffusion.T + 1)
    alphas = _np(diffusion.alphas)
    abar = _np(diffusion.alphas_cumprod)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].plot(t, alphas, label="α_t = 1 − β_t")
    axes[0].set_title(f"α_t: {alphas[0]:.4f} → {alphas[-1]:.4f}")
    axes[1].plot(t, abar, label="ᾱ_t = ∏ α_s")
    axes[1].plot(t, np.sqrt(abar), "--", label="√ᾱ_t (signal)")
    axes[1].plot(t, np.sqrt(1 - abar), ":", label="√(1 − ᾱ_t) (noise)")
    axes[1].set_title(f"ᾱ_T = {abar[-1]:.4f}")
    for ax in axes:
        ax.set_xlabel("diffusion step t")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_forward(roll, diffusion, ts: Sequence[int], seed: int = 0, fps: float = 31.25, path=None,
                 channels: Sequence[str] | None = None):
    """x_t = √ᾱ_t·x_roll + √(1−ᾱ_t)·ε (Eq. 1) of one roll at several t, one shared ε (the frame
    channel of each x_t is drawn)."""
    x0 = torch.as_tensor(_np(roll), dtype=torch.float32)[None]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rolls, titles = [], []
    for t in ts:
        if t == 0:
            xt = x0
        else:
            xt = diffusion.q_sample(x0, torch.tensor([t]), eps)
        ab = float(diffusion.alpha_bar(t))
        rolls.append(xt[0].numpy())
        titles.append(f"t = {t}   ᾱ_t = {ab:.3f}")
    ncols = 2 if len(ts) > 3 else 1
    return plot_rolls(rolls, titles, fps, path, ncols=ncols, vmin=-1.5, vmax=1.5,
                      suptitle="forward process q(x_t | x_0), Eq. 1", channels=channels, onsets=False)



# --- inpainting (§4.4, Fig. 5) -------------------------------------------------------------------

def mask_spans(mask) -> list[tuple[int, int]]:
    """[start, end) frame spans where ``mask`` (frames,) is True."""
    m = np.pad(np.asarray(mask, dtype=np.int8), 1)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def outline_spans(ax, spans, fps: float, ymin: float, ymax: float, color: str = "red") -> None:
    """Red (by default) rectangles around [start, end) frame spans, from ``ymin`` to ``ymax``."""
    for s, e in spans:
        ax.add_patch(Rectangle((s / fps, ymin), (e - s) / fps, ymax - ymin, fill=False, edgecolor=color, lw=2.5))


def plot_inpainting(mel, mask, x0, ref_roll=None, fps: float = 31.25, title: str = "", path=None,
                    channels: Sequence[str] | None = None):
    """Fig. 5: the masked c_mel and the inpainted roll (and the reference), masked spans
    outlined in red on every panel."""
    mel, x0 = _np(mel), _np(x0)
    spans = mask_spans(mask)
    n = 3 if ref_roll is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), sharex=True)
    show_mel(mel, axes[0], fps, "c_mel with masked spans set to −1")
    outline_spans(axes[0], spans, fps, 0, mel.shape[0])
    show_roll(np.clip(x0, 0, 1), axes[1], fps, "DiffRoll output x0: transcribed outside, generated inside red",
              channels=channels)
    outline_spans(axes[1], spans, fps, *PITCH_RANGE)
    if ref_roll is not None:
        show_roll(ref_roll, axes[2], fps, "reference roll", channels=channels)
        outline_spans(axes[2], spans, fps, *PITCH_RANGE)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


# --- statistics of notes (corpus §4, generation §4.3) ----------------------------------------------

def plot_note_statistics(stats: dict[str, dict], path=None, title: str = ""):
    """Polyphony, pitch and note-length histograms (densities) of several sets of notes.

    ``stats`` maps a label to :func:`diffroll.corpus.segments.note_statistics`' dict.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for k, (label, s) in enumerate(stats.items()):
        poly = np.asarray(s["polyphony"])
        axes[0].hist(poly, bins=np.arange(0, max(12, poly.max(initial=0) + 2)) - 0.5, density=True, alpha=0.5,
                     label=f"{label} (mean {poly.mean() if poly.size else 0:.2f})", color=f"C{k}")
        axes[1].hist(s["pitches"], bins=np.arange(LOWEST_MIDI, LOWEST_MIDI + N_KEYS + 1, 2), density=True,
                     alpha=0.5, label=label, color=f"C{k}")
        lengths = np.asarray(s["lengths"])
        axes[2].hist(lengths, bins=np.linspace(0, 2.0, 41), density=True, alpha=0.5,
                     label=f"{label} (median {np.median(lengths) if lengths.size else 0:.2f} s)", color=f"C{k}")
    axes[0].set_xlabel("notes sounding per frame (polyphony)")
    axes[1].set_xlabel("MIDI pitch")
    axes[2].set_xlabel("note length (s)")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_stacked_bars(rows: list[dict], x: str, stack: str, value: str = "hours", path=None, title: str = "",
                      ax=None):
    """Bars of ``value`` summed per ``x``, stacked by ``stack`` (e.g. hours per source, by split)."""
    xs = list(dict.fromkeys(r[x] for r in rows))
    stacks = list(dict.fromkeys(r[stack] for r in rows))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5, 1.1 * len(xs)), 3.6))
    bottom = np.zeros(len(xs))
    for k, level in enumerate(stacks):
        heights = np.array([sum(r[value] for r in rows if r[x] == v and r[stack] == level) for v in xs])
        ax.bar(xs, heights, bottom=bottom, color=f"C{k}", label=str(level))
        bottom += heights
    ax.set_ylabel(value)
    ax.set_xlabel(x)
    ax.set_title(title or f"{value} per {x}, by {stack}")
    ax.tick_params(axis="x", rotation=20)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    _save(ax.figure, path)
    return ax.figure


# --- tables of scores ---------------------------------------------------------------------------

def plot_f1_vs_w(table: dict[str, dict[float, float]], path=None, title: str = "note F1 vs w",
                 baselines: dict[str, float] | None = None, ylabel: str = "note F1"):
    """One line per model: F1 against the guidance weight w (Fig. 4); baselines as flat lines."""
    return plot_learning_curves({label: list(by_w.items()) for label, by_w in table.items()}, path, title,
                                xlabel="w (Algorithm 1 line 4)", ylabel=ylabel, baselines=baselines)


def plot_learning_curves(curves: dict[str, list[tuple[float, float]]], path=None, title: str = "",
                         xlabel: str = "training minutes", ylabel: str = "validation note F1",
                         baselines: dict[str, float] | None = None):
    """One line per model: its (x, y) points in x order, e.g. validation note F1 against training
    wall-clock minutes; ``baselines`` as flat dashed lines."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (label, points) in enumerate(curves.items()):
        xs, ys = zip(*sorted(points)) if points else ((), ())
        ax.plot(xs, ys, "o-", color=f"C{k}", label=label)
    for k, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{k + len(curves)}", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_bars(values: dict[str, float], path=None, title: str = "", ylabel: str = "note F1",
              reference: dict[str, float] | None = None):
    """A bar per label; ``reference`` values (e.g. the paper's) as hollow bars beside them."""
    labels = list(values)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels)), 3.8))
    width = 0.4 if reference else 0.7
    ax.bar(x - (width / 2 if reference else 0), [values[k] for k in labels], width, label="this run")
    if reference:
        ax.bar(x + width / 2, [reference.get(k, np.nan) for k in labels], width, fill=False, hatch="//",
               label="paper")
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_split_example(ref_notes, estimates: dict[str, tuple], note, fps: float = 31.25, margin_s: float = 1.0,
                       span: int = 6, path=None, title: str = ""):
    """One held reference ``note`` (onset, offset, pitch) and what each model made of it: per model
    (label -> (posteriorgram, its notes, its roll channels)) the frame channel around the note
    (± ``span`` keys, ± ``margin_s``) with the reference note outlined in white and the estimated
    notes of that pitch drawn as red bars (a note split in two shows as two bars)."""
    on, off, pitch = float(note[0]), float(note[1]), int(note[2])
    t0, t1 = max(on - margin_s, 0.0), off + margin_s
    fig, axes = plt.subplots(1, len(estimates), figsize=(4.2 * len(estimates), 3.2), sharey=True, squeeze=False)
    for ax, (label, (x0, notes, channels)) in zip(axes[0], estimates.items()):
        show_roll(x0, ax, fps, channels=channels, onsets=True)
        ax.add_patch(Rectangle((on, pitch - 0.5), off - on, 1, fill=False, ec="white", lw=1.5, ls="--"))
        mine = [n for n in notes if int(n[2]) == pitch and n[1] > t0 and n[0] < t1]
        for i, n in enumerate(mine):
            ax.plot([n[0], n[1]], [pitch + 0.8, pitch + 0.8], color="red", lw=3, solid_capstyle="butt")
        ax.set_xlim(t0, t1)
        ax.set_ylim(pitch - span, pitch + span)
        held = sum(1 for n in mine if n[1] > on and n[0] < off)  # estimated notes sounding during the held note
        ax.set_title(f"{label}: {held} note{'s' if held != 1 else ''} for one held note", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_real_tuning(rows, path=None, title: str = "Iowa Steinway B: measured tuning by key"):
    """The tuning of each real note (:func:`diffroll.corpus.realpiano.measured_tuning`) against
    its key: a real piano's stretched octaves (the Railsback curve), and the inharmonicity B
    where enough partials were fitted."""
    pitch = np.array([r.pitch for r in rows])
    cents = np.array([r.cents for r in rows])
    b = np.array([r.inharmonicity for r in rows])
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.plot(pitch, cents, "o", ms=3)
    misnamed = pitch != np.array([r.named_pitch for r in rows])
    ax.plot(pitch[misnamed], cents[misnamed], "x", color="tab:red", label="file named another key")
    ax.set_ylabel("cents from 12-TET (A4 = 440 Hz)")
    ax.set_title(title)
    if misnamed.any():
        ax.legend(loc="upper left", fontsize=8)
    bx.semilogy(pitch, b, "o", ms=3)
    bx.set_ylabel("inharmonicity B")
    bx.set_xlabel("MIDI key")
    _save(fig, path)
    return fig
