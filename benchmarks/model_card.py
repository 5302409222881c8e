"""Scores for the model card: the bundled model, DiffRoll at the baseline's budget, the
discriminative baseline and the peers (basic-pitch, Transkun V2), on the same audio: the whole
piano test split (the headline; its Iowa group is a real Steinway's recordings), the 88 real
Iowa notes, and the whole first test split of the offline corpus.

    .venv/bin/python benchmarks/model_card.py [--checkpoint checkpoints/diffroll-cpu.pt]
        [--baseline checkpoints/discriminative-cpu.pt] [--snapshot PATH] [--sampler ddpm --steps 5] [--precision auto]
        [--ws 0 0.5] [--samples 1 4] [--max-seconds None] [--threads 2] [--peers basic-pitch transkun]
        [--transkun-minutes 10] [--sets piano_test real_notes test] [--out figures/model_card.md]

- real notes (``data_scripts/build_real_piano.py``): each of the 88 Iowa recordings alone;
  keys found (a note of the recording's key within ±50 ms of the attack) and extra notes per
  note, by octave (:func:`diffroll.corpus.realpiano.real_note_scores`);

- piano test split: pedalled piano music (music21 keyboard pieces held out by piece, pianistic
  pieces from their own seed) rendered only in timbres never used for training: FluidR3_GM,
  MuseScore_General and the procedural piano at held-out parameters;
- first test split: music21 scores and studies as written, in the training soundfonts ("seen
  timbre") and in FluidR3_GM / MuseScore_General ("unseen timbre").

Every piece is transcribed whole with the CLI's code path (:meth:`Pipeline.transcribe`'s window
machinery) and scored with mir_eval: note F1 (onset ±50 ms), note-with-offset F1, note-with-
offset-and-velocity F1, and the notes that split a held reference note (:func:`split_notes`).
The bundled model is scored with one sample (the CLI's default) and with the mean of K samples
(``--samples``; ``diffroll transcribe --samples K``).
Transkun (real-time factor ~7 on 2 CPU cores) runs on the real notes and on the *Transkun
subset* of the piano test split (``--transkun-minutes``, pieces spread over every timbre), where
every model has its rows too; its MIDI is cached under ``runs/peers/transkun``.
Not a test: it reports numbers (``runs/model_card/results.json`` keeps every row).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffroll.core.checkpoint import load_checkpoint, trained_steps

from diffroll.transcription.pipeline import load_model
from diffroll.corpus.segments import load_pieces
from diffroll.evaluation.metrics import mean_scores, missed_restrikes, note_scores, restrike_notes, split_notes
from diffroll.evaluation.runners import evaluate_pieces, transcribe_real_notes
from diffroll.transcription.settings import PRECISIONS, SamplingSettings
from diffroll.evaluation.peers import PEERS, run_peer
from diffroll.corpus.realpiano import load_real_notes, real_note_scores

ROOT = Path(__file__).resolve().parents[1]
SETS = ("piano_test", "real_notes", "test")


def load_set(root: Path, split: str, cfg, max_seconds: float | None) -> list[tuple]:
    """(name, group, wave, notes) of every rendering of a split, cut to ``max_seconds``."""
    return load_pieces(root, split, None, None, max_seconds, cfg=cfg)


def timbre(group: str, cfg) -> str:
    return "seen" if group in cfg.data.soundfonts else "unseen"


def tag(rows: list[dict], label: str, trained, w, split: str, cfg) -> list[dict]:
    return [{**r, "model": label, "trained": trained, "w": w, "set": split, "timbre": timbre(r["group"], cfg)}
            for r in rows]


def peer_rows(name: str, pieces, sr: int, threads: int) -> list[dict]:
    """A peer's rows in the layout of :func:`evaluate_pieces` (its MIDI scored the same way), with its notes."""
    rows, _ = run_peer(name, pieces, sr, threads)
    return [dict(name=piece, group=group, seconds=r["seconds"], wall_seconds=r["wall"],
                 rtf=r["wall"] / r["seconds"], n_ref=len(ref), n_est=len(r["est"]), est=r["est"],
                 split_notes=split_notes(ref, r["est"]), missed_restrikes=missed_restrikes(ref, r["est"]),
                 restrikes=len(restrike_notes(ref)), **note_scores(ref, r["est"]))
            for r, (piece, group, _, ref) in zip(rows, pieces)]


def transkun_subset(pieces, minutes: float, sr: int) -> list[tuple]:
    """Pieces spread over every group of the piano test split, round-robin, until ``minutes`` of audio."""
    by_group: dict[str, list] = {}
    for p in pieces:
        by_group.setdefault(p[1], []).append(p)
    chosen, seconds, i = [], 0.0, 0
    while seconds < 60 * minutes and any(i < len(g) for g in by_group.values()):
        for group in sorted(by_group):
            if i < len(by_group[group]) and seconds < 60 * minutes:
                chosen.append(by_group[group][i])
                seconds += len(by_group[group][i][2]) / sr
        i += 1
    return chosen


def real_notes_table(results: dict[str, tuple[list, list[dict]]]) -> list[str]:
    """Keys found and extra notes per note, overall and by octave, one column pair per model."""
    scores = {label: real_note_scores([(ref[0], r["est"]) for (_, _, _, ref), r in zip(pieces, rows)])
              for label, (pieces, rows) in results.items()}
    rtf = {label: sum(r["wall_seconds"] for r in rows) / sum(r["seconds"] for r in rows)
           for label, (_, rows) in results.items()}
    lines = ["## Real notes (88 Iowa recordings of a Steinway B, ff)", "",
             "| model | keys found of 88 | extra notes / note | missed | RTF |", "| --- | ---: | ---: | --- | ---: |"]
    for label, s in scores.items():
        missed = ", ".join(s["missed"][:12]) + (" …" if len(s["missed"]) > 12 else "")
        lines.append(f"| {label} | {s['found']} | {s['extra_per_note']:.2f} | {missed or '–'} | {rtf[label]:.3f} |")
    octaves = list(next(iter(scores.values()))["by_octave"])
    lines += ["", "### by octave: keys found / extra notes per note", "",
              "| octave | keys | " + " | ".join(scores) + " |", "| --- | ---: |" + " ---: |" * len(scores)]
    for o in octaves:
        cells = [f"{s['by_octave'][o]['found']} / {s['by_octave'][o]['extra_per_note']:.1f}" for s in scores.values()]
        lines.append(f"| {o} | {next(iter(scores.values()))['by_octave'][o]['keys']} | " + " | ".join(cells) + " |")
    return lines + [""]


def table(rows: list[dict], by: tuple, title: str) -> list[str]:
    keys = ("f1", "f1_offset", "f1_velocity", "split_notes", "missed_restrikes", "rtf")
    head = [title, "", "| " + " | ".join(by) + " | pieces | note F1 | offset F1 | velocity F1 | split notes / piece | "
            "missed re-strikes / piece (of) | RTF |",
            "|" + " --- |" * len(by) + " ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines = []
    for m in mean_scores(rows, by=by):
        cells = [str(m[b]) if not isinstance(m[b], float) else format(m[b], "g") for b in by]
        vals = [f"{100 * m[k]:.1f}" if k.startswith("f1") else f"{m[k]:.2f}" if k == "split_notes"
                else f"{m[k]:.2f} ({m['restrikes']:.1f})" if k == "missed_restrikes" else f"{m[k]:.3f}" for k in keys]
        lines.append("| " + " | ".join(cells) + f" | {m['pieces']} | " + " | ".join(vals) + " |")
    return head + lines + [""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "diffroll-cpu.pt")
    p.add_argument("--baseline", type=Path, default=ROOT / "checkpoints" / "discriminative-cpu.pt")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="DiffRoll weights with the baseline's training budget (equal-budget rows)")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "offline-cpu")
    p.add_argument("--sampler", default=SamplingSettings.sampler, help=f"default: the CLI's ({SamplingSettings.sampler})")
    p.add_argument("--steps", type=int, default=SamplingSettings.steps, help=f"default: the CLI's ({SamplingSettings.steps})")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the network's arithmetic, as the CLI's --precision (auto: bf16 where the CPU has it natively)")
    p.add_argument("--ws", type=float, nargs="+", default=None,
                   help="guidance weights (default: each checkpoint's own, as the CLI uses it)")
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4],
                   help="K samples per piece for the bundled model, each K a row (default: 1 4)")
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peers", nargs="*", choices=sorted(PEERS), default=sorted(PEERS),
                   help="peer transcribers on the same audio, each in its own venv (default: all; none: --peers)")
    p.add_argument("--transkun-minutes", type=float, default=10.0,
                   help="audio of the piano test split Transkun transcribes (RTF ~7 on 2 cores; default 10; 0: none)")
    p.add_argument("--subset-only", action="store_true",
                   help="score the piano test split on the Transkun subset only (every model; quick)")
    p.add_argument("--real-notes", type=Path, default=ROOT / "data" / "real_notes")
    p.add_argument("--out", type=Path, default=ROOT / "figures" / "model_card.md")
    p.add_argument("--label", default="DiffRoll (bundled)", help="the checkpoint's name in the tables")
    p.add_argument("--raw", type=Path, default=ROOT / "runs" / "model_card" / "results.json")
    args = p.parse_args(argv)
    if any(k < 1 for k in args.samples):
        p.error(f"--samples must be whole numbers >= 1, got {args.samples}")
    torch.set_num_threads(args.threads)

    bundled = load_model(args.checkpoint)
    cfg = bundled.config
    sr = cfg.audio.sample_rate
    sets = {s: load_real_notes(args.real_notes, sr) if s == "real_notes" else load_set(args.data, s, cfg, args.max_seconds)
            for s in args.sets}
    subset = transkun_subset(sets["piano_test"], args.transkun_minutes, sr) if "piano_test" in sets else []
    if args.subset_only:  # every model on the Transkun subset alone (a quick card beside Transkun)
        sets["piano_test"] = subset
    in_subset = {(name, group) for name, group, _, _ in subset}
    models = [(args.label if k == 1 else f"{args.label}, mean of {k} samples", args.checkpoint, args.ws, k)
              for k in args.samples]
    if args.snapshot is not None and args.snapshot.is_file():
        models.append(("DiffRoll, baseline's budget", args.snapshot, args.ws, 1))
    if args.baseline is not None and args.baseline.is_file():
        models.append(("Discriminative (§4.1)", args.baseline, [None], 1))

    rows: list[dict] = []
    real: dict[str, tuple[list, list[dict]]] = {}  # label -> (pieces, rows) on the real notes
    for label, path, ws, k in models:
        pipe = bundled if path == args.checkpoint else load_model(path)
        trained = trained_steps(load_checkpoint(path))
        ws = ws or [pipe.config.diffusion.w if pipe.config.train.mode == "diffusion" else None]
        for w in ws:
            sampling = pipe.sampling.replace(sampler=args.sampler, steps=args.steps, precision=args.precision,
                                             w=pipe.sampling.w if w is None else w,
                                             samples=k)
            for split, pieces in sets.items():
                start = time.perf_counter()
                if split == "real_notes":
                    real[label if len(ws) == 1 else f"{label}, w = {w}"] = (pieces, transcribe_real_notes(pipe, pieces, sampling))
                    continue
                scored = evaluate_pieces(pipe, pieces, sampling, progress=False)
                rows += tag(scored, label, trained, "–" if w is None else w, split, pipe.config)
                m = mean_scores(scored, by=())[0]
                print(f"{label:30s} w={w} {split:10s} F1 {m['f1']:.3f} offset {m['f1_offset']:.3f} "
                      f"velocity {m['f1_velocity']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    for name in args.peers:
        label = PEERS[name].label
        for split, pieces in sets.items():
            if name == "transkun" and split != "real_notes":
                if split != "piano_test" or not subset:
                    continue  # too slow for the whole corpus on a CPU: the subset of the piano test split only
                pieces = subset
            start = time.perf_counter()
            scored = peer_rows(name, pieces, sr, args.threads)
            if split == "real_notes":
                real[label] = (pieces, scored)
                continue
            rows += tag(scored, label, "–", "–", split, cfg)
            m = mean_scores(scored, by=())[0]
            print(f"{label:30s}       {split:10s} F1 {m['f1']:.3f} offset {m['f1_offset']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps({"rows": [{k: v for k, v in r.items() if k != "est"} for r in rows],
                                    "real_notes": {label: real_note_scores([(ref[0], r["est"]) for (_, _, _, ref), r
                                                                            in zip(pieces, rs)])
                                                   for label, (pieces, rs) in real.items()}},
                                   indent=1, default=str))
    minutes = {s: sum(len(w) for _, _, w, _ in ps) / sr / 60 for s, ps in sets.items()}
    lines = [
        "# Model card scores",
        "",
        f"Written by `benchmarks/model_card.py` (`make model-card`). Sampler `{args.sampler}`, {args.steps} steps; "
        f"every piece transcribed whole{'' if args.max_seconds is None else f' (first {args.max_seconds:g} s)'}; "
        "mir_eval note F1 (onset ±50 ms), note-with-offset F1, note-with-offset-and-velocity F1 (mean over "
        "pieces); *split notes*: estimated notes that cut a held reference note in two (a spurious re-strike); "
        "RTF: wall time over audio time on this machine's CPU, one process per model.",
        "",
    ]
    if "piano_test" in sets:
        p_pieces = sets["piano_test"]
        lines += [f"**Piano test split** (the headline{', its Transkun subset only' if args.subset_only else ''}): "
                  f"{len(p_pieces)} renderings, {minutes['piano_test']:.1f} min "
                  "of pedalled piano music (held-out keyboard pieces and pianistic pieces) in timbres never used in "
                  "training: " + ", ".join(sorted({g for _, g, _, _ in p_pieces})) + " (`iowa`: the recordings of "
                  "a real Steinway B, one dynamic layer).", ""]
        piano = [r for r in rows if r["set"] == "piano_test"]
        whole = piano if args.subset_only else [r for r in piano if r["model"] != PEERS["transkun"].label]
        lines += table(whole, ("model", "trained", "w"), "## Piano test split, all unseen timbres")
        lines += table(whole, ("model", "w", "group"), "### by timbre")
        if "transkun" in args.peers and subset and not args.subset_only:
            lines += [f"**Transkun subset**: {len(subset)} of those renderings "
                      f"({sum(len(w) for _, _, w, _ in subset) / sr / 60:.1f} min, spread over every timbre), "
                      "every model on the same audio.", ""]
            lines += table([r for r in piano if (r["name"], r["group"]) in in_subset], ("model", "w"),
                           "### Transkun subset of the piano test split")
    if real:
        lines += [f"**Real notes**: each of the 88 recordings alone ({minutes['real_notes']:.1f} min; built by "
                  "`data_scripts/build_real_piano.py`); the reference is the key each recording holds (the archive's "
                  "A0 file holds A♯0, its B♭0 and B0 files hold C1: 86 distinct keys); found: a note of that key "
                  "within ±50 ms of the attack; extra: every other note.", ""]
        lines += real_notes_table(real)
    if "test" in sets:
        lines += [f"**First test split**: {len(sets['test'])} renderings ({minutes['test']:.1f} min) of held-out "
                  "music21 scores and studies as written; seen timbre = " + ", ".join(cfg.data.soundfonts[:2]) +
                  "; unseen = " + ", ".join(cfg.data.test_soundfonts) + ".", ""]
        lines += table([r for r in rows if r["set"] == "test"], ("model", "trained", "w", "timbre"),
                       "## First test split")
    args.out.write_text("\n".join(lines))
    print("wrote", args.out, "and", args.raw)


if __name__ == "__main__":
    main()
