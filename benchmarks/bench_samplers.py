"""Samplers x steps x guidance: note F1, note-with-offset F1 and real-time factor, and basic-pitch.

    .venv/bin/python benchmarks/bench_samplers.py [--data data/offline-cpu] [--checkpoint PATH]
        [--max-seconds 30] [--pieces 4] [--quick] [--threads 1] [--no-basic-pitch]

One run, one machine, the same audio for every row: the offline corpus's piano test split (the
headline: pedalled piano music in timbres never trained on, FluidR3_GM, MuseScore_General and the
procedural piano at held-out parameters) and its first test split (scores and studies in the
training soundfonts, "seen", and in FluidR3_GM / MuseScore_General, "unseen"), ``--pieces`` per
timbre, each cut to its first ``--max-seconds``. Every row transcribes every piece with the
bundled model (or ``--checkpoint``) through :meth:`diffroll.transcription.pipeline.Pipeline.transcribe`, the code
path of ``diffroll transcribe``; the real-time factor is wall time over audio time, mel and note
reading included, audio loading excluded.
basic-pitch (Bittner et al., ICASSP 2022) runs in its own venv (:mod:`diffroll.evaluation.peers`,
``.cache/peer-basic-pitch``, created when missing; ONNX backend, offline) on the same cut audio, and its MIDI is scored with
the same :func:`diffroll.evaluation.metrics.note_scores`.

Writes ``figures/bench.md`` (table, settings, recommendation) and ``figures/bench.png``
(F1 against real-time factor). Not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from diffroll.corpus.segments import cut_piece

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ("ddpm", "ddim", "dpmpp")
STEPS = (200, 50, 20, 10, 5, 2, 1)
WEIGHTS = (0.0, 0.5)  # and the checkpoint's own w (its CLI default)
RTF_TARGET = 0.02  # the CLI default's real-time factor on 2 cores
F1_MARGIN = 0.01  # "within 1 point" of 200-step DDPM
MIN_DEFAULT_STEPS = 5  # a default keeps a margin: 1-2 steps only work while x̂0 hardly depends on x_t


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu", help="offline corpus root")
    p.add_argument("--splits", nargs="+", default=["piano_test", "test"], choices=["piano_test", "test"])
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="default: the bundled checkpoints/diffroll-cpu.pt, else the newest runs/*/checkpoint.pt")
    p.add_argument("--max-seconds", type=float, default=30.0, help="cut each test piece to this (default 30)")
    p.add_argument("--pieces", type=int, default=4, help="pieces per split and timbre (default 4)")
    p.add_argument("--quick", action="store_true",
                   help="reduced grid: the 200-step rows only for DDPM, no 50-step DDPM rows")
    p.add_argument("--slow-seconds", type=float, default=None,
                   help="cut the pieces further for the 200-step rows (default: --max-seconds)")
    p.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads (default 2)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--no-basic-pitch", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "figures")
    p.add_argument("--note", default=None, help="a remark for the header of bench.md (e.g. which model and why)")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only re-render bench.md / bench.png from a previous run's runs/bench/results.json")
    return p.parse_args(argv)


# --- what to run --------------------------------------------------------------------------------

def grid(quick: bool, weights=WEIGHTS) -> list[tuple[str, int, float]]:
    rows = []
    for w in weights:
        for sampler in SAMPLERS:
            for steps in STEPS:
                if quick and steps == 200 and sampler != "ddpm":
                    continue
                if quick and steps == 50 and sampler == "ddpm":
                    continue
                rows.append((sampler, steps, w))
    return rows


def pick_checkpoint(path: Path | None) -> tuple[Path, str]:
    from diffroll.core.paths import bundled_checkpoint

    if path is not None:
        return path, "given with --checkpoint"
    if bundled_checkpoint().is_file():
        return bundled_checkpoint(), "the bundled model"
    runs = sorted((ROOT / "runs").glob("*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        sys.exit(f"no checkpoint: {bundled_checkpoint()} is missing and runs/*/checkpoint.pt has none")
    return runs[-1], "NOT the bundled model (missing): the newest runs/*/checkpoint.pt"


def test_pieces(root: Path, splits: list[str], per_group: int, cfg, max_seconds: float):
    """(name, "split:group", wave, notes) of the first ``per_group`` pieces of each split and
    timbre (:func:`diffroll.corpus.segments.load_pieces`)."""
    from diffroll.corpus import segments as data

    out, groups = [], []
    for split in splits:
        for g in sorted({p.group for p in data.list_pieces(root, dataset="offline", split=split)}):
            groups.append(f"{split}:{g}")
            out += [(name, groups[-1], wave, ref)
                    for name, _, wave, ref in data.load_pieces(root, split, [g], per_group, max_seconds, cfg=cfg)]
    return out, groups


# --- DiffRoll -----------------------------------------------------------------------------------

def run_diffroll(pipe, pieces, sampler, steps, w, batch_size) -> list[dict]:
    from diffroll.evaluation.metrics import note_scores

    sr = pipe.config.audio.sample_rate
    rows = []
    for name, group, wave, ref in pieces:
        start = time.perf_counter()
        sampling = pipe.sampling.replace(sampler=sampler, steps=steps, w=w, seed=0, batch_size=batch_size)
        est = pipe.transcribe(wave, sampling, keep_samples=False, progress=False).notes
        wall = time.perf_counter() - start
        rows.append(dict(name=name, group=group, seconds=len(wave) / sr, wall=wall, **note_scores(ref, est)))
    return rows


# --- basic-pitch --------------------------------------------------------------------------------

def run_basic_pitch(pieces, sr: int, threads: int) -> tuple[list[dict], dict]:
    """basic-pitch on the same audio (:func:`diffroll.evaluation.peers.run_peer`), each row with its note scores."""
    from diffroll.evaluation.metrics import note_scores
    from diffroll.evaluation.peers import run_peer

    rows, info = run_peer("basic-pitch", pieces, sr, threads)
    return [{**r, **note_scores(ref, r["est"])} for r, (_, _, _, ref) in zip(rows, pieces)], info


# --- summary, table, plot -----------------------------------------------------------------------

COLUMNS = ("piano", "seen", "unseen", "all")  # piano test split; first test split by timbre; everything


def summarise(rows: list[dict], groups: list[str], seen: set[str]) -> dict:
    """Mean scores over the piano test split ("piano"), the first test split's seen and unseen
    timbres, and all rows, with the real-time factor over the audio of each."""
    def agg(rs):
        return dict(f1=float(np.mean([r["f1"] for r in rs])), f1_offset=float(np.mean([r["f1_offset"] for r in rs])),
                    f1_velocity=float(np.mean([r["f1_velocity"] for r in rs])),
                    rtf=sum(r["wall"] for r in rs) / sum(r["seconds"] for r in rs), seconds=sum(r["seconds"] for r in rs))
    members = {"piano": lambda g: g.startswith("piano_test:"),
               "seen": lambda g: g.startswith("test:") and g.split(":", 1)[1] in seen,
               "unseen": lambda g: g.startswith("test:") and g.split(":", 1)[1] not in seen,
               "all": lambda g: True}
    return {label: agg(rs) for label, test in members.items() if (rs := [r for r in rows if test(r["group"])])}


def head(r: dict) -> dict:
    """The scores a setting is judged by: the piano test split's when it was run."""
    return r["s"].get("piano", r["s"]["all"])


def recommend(results: list[dict], cfg_w: float):
    """(reference row, recommended row, targets met): the fastest setting with at least
    MIN_DEFAULT_STEPS steps, RTF <= RTF_TARGET and note F1 (piano test split) within one point of
    200-step DDPM at the config's w; failing that, the best F1 at RTF <= RTF_TARGET."""
    ref = next((r for r in results if r["sampler"] == "ddpm" and r["steps"] == 200 and r["w"] == cfg_w), None)
    fast = [r for r in results if r["sampler"] != "basic-pitch" and r["s"]["all"]["rtf"] <= RTF_TARGET
            and MIN_DEFAULT_STEPS <= r["steps"] < 200]
    if ref is None or not fast:
        return ref, None, False
    close = [r for r in fast if head(r)["f1"] >= head(ref)["f1"] - F1_MARGIN]
    if close:  # the fastest of those within one point
        return ref, min(close, key=lambda r: r["s"]["all"]["rtf"]), True
    return ref, max(fast, key=lambda r: head(r)["f1"]), False


def fmt(x, pct=True):
    return "–" if x is None else (f"{100 * x:.1f}" if pct else f"{x:.3f}")


def load_remark(meta: dict) -> str:
    """Whether other jobs shared the cores: the load before the run is theirs; the load after also
    counts the benchmark's own threads."""
    if float(meta["load_before"]) < 1.0 and float(meta["load_after"]) <= meta["threads"] + 0.5:
        return "no other job was running (the load after is the benchmark's own threads)"
    return "the machine was shared with other jobs, so RTFs are upper bounds"


def write_markdown(path: Path, results, meta, ref, best, met):
    lines = [
        "# Samplers × steps × guidance — note F1, note-with-offset F1, velocity F1, real-time factor",
        "",
        f"Written by `benchmarks/bench_samplers.py` on {meta['date']} ({meta['machine']}; torch threads "
        f"{meta['threads']}; load average {meta['load_before']} before, {meta['load_after']} after — "
        f"{load_remark(meta)}).",
        "",
        f"- Model: `{meta['checkpoint']}` — {meta['checkpoint_note']}; scale `{meta['scale']}`, "
        f"T = {meta['T']}, config w = {meta['cfg_w']}, trained {meta['train_step']} steps.",
        f"- Audio: `{meta['data']}`, {meta['n_pieces']} pieces ({meta['groups_text']}), each cut to at most its "
        f"first {meta['max_seconds']:g} s: {meta['audio_seconds']:.0f} s of audio per row. *piano*: the piano test "
        "split (pedalled piano music, timbres never trained on); *seen* / *unseen*: the first test split (scores "
        "and studies) in the training soundfonts / in FluidR3_GM and MuseScore_General.",
    ]
    if meta.get("note"):
        lines.append(f"- **Note:** {meta['note']}")
    if meta["slow_seconds"] < meta["max_seconds"]:
        lines.append(f"- † 200-step rows: pieces cut to {meta['slow_seconds']:g} s (too slow for the full excerpts); "
                     "their F1 is on shorter audio than the other rows.")
    lines += [
        f"- Grid: {'reduced (`--quick`: 200 steps only for DDPM, no 50-step DDPM)' if meta['quick'] else 'full'}; "
        "seed 0; windows of 640 frames with 160 overlapping; batch size "
        f"{meta['batch_size']}. Note F1: onset within 50 ms (mir_eval); offset F1: mir_eval defaults.",
        "- RTF = wall seconds / audio seconds (mel, sampling and note reading; not audio decoding).",
        "",
        "| sampler | steps | w | note F1 piano | offset F1 piano | velocity F1 piano | note F1 seen | "
        "note F1 unseen | RTF |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        s = r["s"]
        mark = " †" if r.get("slow") else ""
        bold = "**" if best is not None and r is best else ""
        piano = s.get("piano", {})
        lines.append(f"| {bold}{r['sampler']}{bold} | {r['steps'] if r['steps'] else '–'}{mark} | "
                     f"{'–' if r['w'] is None else format(r['w'], 'g')} | "
                     f"{fmt(piano.get('f1'))} | {fmt(piano.get('f1_offset'))} | {fmt(piano.get('f1_velocity'))} | "
                     f"{fmt(s.get('seen', {}).get('f1'))} | {fmt(s.get('unseen', {}).get('f1'))} | "
                     f"{fmt(s['all']['rtf'], pct=False)} |")
    lines.append("")
    if meta.get("bp_note"):
        lines += [meta["bp_note"], ""]
    if ref is not None:
        lines.append(f"Reference: 200-step DDPM at w = {ref['w']:g}: note F1 (piano) {fmt(head(ref)['f1'])}, "
                     f"RTF {fmt(ref['s']['all']['rtf'], pct=False)}.")
    if best is not None:
        lines.append(f"**Recommended CLI default: `--sampler {best['sampler']} --steps {best['steps']} --w {best['w']:g}`** "
                     f"— note F1 (piano) {fmt(head(best)['f1'])}, RTF {fmt(best['s']['all']['rtf'], pct=False)} "
                     + (f"(meets both targets: RTF ≤ {RTF_TARGET:g} and F1 within 1 point of 200-step DDPM)." if met else
                        f"(the best F1 at RTF ≤ {RTF_TARGET:g}; it does NOT reach F1 within 1 point of 200-step DDPM)."))
        close = [r for r in results if r["sampler"] != "basic-pitch" and r["steps"] < 200 and ref is not None
                 and head(r)["f1"] >= head(ref)["f1"] - F1_MARGIN]
        if close:
            f = min(close, key=lambda r: r["s"]["all"]["rtf"])
            lines.append(f"The rule keeps at least {MIN_DEFAULT_STEPS} steps as a margin; at any step count the fastest "
                         f"setting within one point is {f['sampler']} {f['steps']} steps w = {f['w']:g} "
                         f"(F1 {fmt(head(f)['f1'])}, RTF {fmt(f['s']['all']['rtf'], pct=False)}).")
    else:
        lines.append(f"No setting reached RTF ≤ {RTF_TARGET:g} on this machine.")
    lines += ["", "![F1 against real-time factor](bench.png)", ""]
    path.write_text("\n".join(lines))


def plot(path: Path, results, ref, best, cfg_w: float):
    """F1 against RTF per sampler and w (dashed w = 0, solid w = 0.5, dotted the checkpoint's own
    w), basic-pitch, the CLI default (SamplingSettings.sampler x SamplingSettings.steps at the checkpoint's w) and the
    rule's recommendation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffroll.transcription.settings import SamplingSettings

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = {"ddpm": "tab:blue", "ddim": "tab:orange", "dpmpp": "tab:green"}
    for ax, key, title in ((axes[0], "f1", "note F1 (onset)"), (axes[1], "f1_offset", "note-with-offset F1")):
        for sampler in SAMPLERS:
            for w in sorted({r["w"] for r in results if r["sampler"] == sampler}):
                style = {0.0: "--", 0.5: "-"}.get(w, ":")
                rs = sorted((r for r in results if r["sampler"] == sampler and r["w"] == w), key=lambda r: r["steps"])
                if not rs:
                    continue
                x = [r["s"]["all"]["rtf"] for r in rs]
                y = [100 * head(r)[key] for r in rs]
                ax.plot(x, y, style, marker="o", ms=4, color=colors[sampler], label=f"{sampler} w={w:g}")
                for r, xi, yi in zip(rs, x, y):
                    ax.annotate(str(r["steps"]), (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        for r in results:
            if r["sampler"] == "basic-pitch":
                ax.plot(r["s"]["all"]["rtf"], 100 * head(r)[key], "k*", ms=12, label="basic-pitch")
        for r in results:
            if (r["sampler"], r["steps"], r["w"]) == (SamplingSettings.sampler, SamplingSettings.steps, cfg_w):
                ax.plot(r["s"]["all"]["rtf"], 100 * head(r)[key], "s", ms=12, mfc="none", mec="black",
                        label="CLI default")
        if best is not None:
            ax.plot(best["s"]["all"]["rtf"], 100 * head(best)[key], "o", ms=12, mfc="none", mec="red",
                    label="recommended by the rule")
        ax.axvline(RTF_TARGET, color="grey", lw=0.8, ls=":")
        if ref is not None and key == "f1":
            ax.axhline(100 * (head(ref)["f1"] - F1_MARGIN), color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("real-time factor (log; lower is faster)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (%) — piano test split")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


# --- main ---------------------------------------------------------------------------------------

def render(args, results, meta) -> None:
    ref, best, met = recommend(results, meta["cfg_w"])
    args.out.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out / "bench.md", results, meta, ref, best, met)
    plot(args.out / "bench.png", results, ref, best, meta["cfg_w"])
    print(f"wrote {args.out / 'bench.md'} and {args.out / 'bench.png'}")
    if best is not None:
        print(f"recommended default: --sampler {best['sampler']} --steps {best['steps']} --w {best['w']:g}"
              f" ({'meets' if met else 'misses'} the F1 target)")


def main(argv=None):
    args = parse_args(argv)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        if args.note:
            saved["meta"]["note"] = args.note
        render(args, saved["results"], saved["meta"])
        return
    import torch

    torch.set_num_threads(args.threads)
    from diffroll.core.checkpoint import load_checkpoint, trained_steps
    from diffroll.transcription.pipeline import load_model

    ckpt, note = pick_checkpoint(args.checkpoint)
    model = load_model(ckpt, device="cpu")
    cfg = model.config
    state = load_checkpoint(ckpt)
    slow_s = args.slow_seconds or args.max_seconds
    pieces, groups = test_pieces(args.data, args.splits, args.pieces, cfg, args.max_seconds)
    slow_pieces = [(n, g, *cut_piece(w, r, slow_s, cfg.audio.sample_rate)) for n, g, w, r in pieces]
    seen = set(cfg.data.soundfonts)
    print(f"{len(pieces)} pieces from {groups}, {ckpt} ({note})", flush=True)
    load_before = os.getloadavg()[0]
    run_diffroll(model, pieces[:1], "ddim", 2, 0.5, args.batch_size)  # warm-up
    results = []
    for sampler, steps, w in grid(args.quick, sorted(set(WEIGHTS) | {float(cfg.diffusion.w)})):
        slow = steps >= 200 and slow_s < args.max_seconds
        rows = run_diffroll(model, slow_pieces if slow else pieces, sampler, steps, w, args.batch_size)
        r = dict(sampler=sampler, steps=steps, w=w, slow=slow, s=summarise(rows, groups, seen), rows=rows)
        results.append(r)
        print(f"{sampler:6s} {steps:4d} w={w:g}: F1 {100 * head(r)['f1']:.1f} "
              f"offset {100 * head(r)['f1_offset']:.1f} RTF {r['s']['all']['rtf']:.3f}", flush=True)
    bp_note = None
    if not args.no_basic_pitch:
        try:
            rows, info = run_basic_pitch(pieces, cfg.audio.sample_rate, args.threads)
            rows = [{k: v for k, v in r.items() if k != "est"} for r in rows]
            results.append(dict(sampler="basic-pitch", steps=None, w=None, s=summarise(rows, groups, seen), rows=rows))
            bp_note = (f"basic-pitch: ICASSP 2022 model, ONNX backend (`{Path(info['model']).name}`), default "
                       f"thresholds, {args.threads} onnxruntime thread(s), fed the same 16 kHz cuts (it resamples to "
                       f"22.05 kHz); RTF excludes its one-time model load ({info['load_seconds']:.1f} s).")
            print(f"basic-pitch: F1 {100 * head(results[-1])['f1']:.1f} RTF {results[-1]['s']['all']['rtf']:.3f}")
        except (RuntimeError, OSError) as err:
            bp_note = f"basic-pitch: not run ({err})."
            print(bp_note, file=sys.stderr)
    meta = dict(date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
                threads=args.threads, load_before=f"{load_before:.1f}", load_after=f"{os.getloadavg()[0]:.1f}",
                checkpoint=os.path.relpath(ckpt, ROOT), checkpoint_note=note, scale=cfg.scale, T=cfg.diffusion.T,
                cfg_w=cfg.diffusion.w, train_step=trained_steps(state), data=os.path.relpath(args.data, ROOT),
                n_pieces=len(pieces), groups_text=", ".join(groups),
                max_seconds=args.max_seconds, slow_seconds=slow_s, quick=args.quick, batch_size=args.batch_size,
                audio_seconds=sum(len(p[2]) for p in pieces) / cfg.audio.sample_rate, bp_note=bp_note,
                note=args.note)
    raw = ROOT / "runs" / "bench" / "results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    print(f"wrote {raw}")
    render(args, results, meta)


if __name__ == "__main__":
    main()
