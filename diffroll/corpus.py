"""The offline corpus: paired audio and piano rolls built from real scores, on any machine.

MAESTRO (§4) cannot be downloaded everywhere, so the default dataset is built from the scores
shipped inside ``music21`` (Bach chorales, Palestrina, Monteverdi, Haydn and Mozart quartets,
a Mozart sonata, Joplin, Schumann, ...) plus generated pieces that cover all 88 keys
(:func:`diffroll.performance.generated_piece`). Each score becomes MIDI performances
(transposed, tempo-scaled, with shaped dynamics) rendered by FluidSynth (:mod:`diffroll.render`).

Layout under ``root``::

    scores/<piece>.mid              music21's MIDI of each score (a cache: parsing is slow)
    midi/<piece>.mid                the performances; ``<piece>+k`` is augmented copy k
    audio/<soundfont>/<piece>.flac  16 kHz renders
    manifest.csv                    piece, split, soundfont, audio, midi, seconds, source, ...
    corpus.json                     the settings it was built with, and what was skipped

Splits are by score (:func:`split_of`), so no copy of a piece crosses splits. Train and
validation are rendered with the training soundfonts (random GM piano program and audio
augmentation); test is rendered without augmentation with the training soundfonts ("seen
timbre") and with the held-out ones ("unseen timbre"). Building is idempotent.
"""
from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import signal
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
from tqdm.auto import tqdm

from .config import Config
from .loaders import MANIFEST, MANIFEST_COLUMNS, SPLITS, DataError, split_of, stable_hash
from .performance import draw_variation, generated_piece, perform, piano_notes
from .render import PianoSynth, augment_audio, normalize_peak, soundfont_path

log = logging.getLogger("diffroll.data")

CORPUS_VERSION = 3  # bump when the same settings would build different files
# music21 corpus folders left out: collections of monophonic folk tunes in one file, test files,
# and roman-numeral analyses (block-chord duplicates of pieces already present).
EXCLUDED_COLLECTIONS = {"airdsAirs", "essenFolksong", "oneills1850", "ryansMammoth", "nottingham-dataset",
                        "miscFolk", "demos", "theoryExercises"}
EXCLUDED_SUFFIXES = {".rntxt"}
# String-quartet movements that music21 takes 10–40 s to parse (the rest of the corpus: 0.1–5 s).
# Excluding them by name, not by a timeout, keeps the selection the same on every machine.
SLOW_SCORES = ("beethoven__opus18", "beethoven__opus59", "beethoven__opus74", "beethoven__opus132",
               "beethoven__opus133", "haydn__opus74", "mozart__k458", "schumann_robert__opus41",
               "weber__concertino")
FORMAT_PREFERENCE = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


@dataclass(frozen=True)
class CorpusPlan:
    """Sizes of the offline corpus at one scale."""

    max_scores: int | None  # scores used when cfg.data.n_pieces is None (None: all)
    excerpt_s: float | None  # each performance is at most this long (None: whole piece)
    generated_s: float  # length of each generated piece
    collections: tuple[str, ...] | None  # music21 folders to draw from (None: all but the excluded)
    timeout_s: float  # per-score limit on music21 parsing: a safety net that should never trigger


PLANS = {
    "smoke": CorpusPlan(max_scores=None, excerpt_s=20.0, generated_s=20.0, collections=("bach",), timeout_s=60),
    "cpu": CorpusPlan(max_scores=120, excerpt_s=45.0, generated_s=45.0, collections=None, timeout_s=60),
    "paper": CorpusPlan(max_scores=None, excerpt_s=None, generated_s=120.0, collections=None, timeout_s=300),
}


# --- choosing and converting scores -----------------------------------------------------------

def score_candidates(collections: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of usable music21 scores, interleaved across collections so that a capped
    selection samples every composer rather than the 1,300 Palestrina movements alone.

    Names are the corpus path without its extension, ``/`` replaced by ``__`` (``bach__bwv66.6``);
    where a piece exists in several formats the preferred one (:data:`FORMAT_PREFERENCE`) is kept.
    """
    import music21

    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in music21.corpus.getPaths():
        path = Path(path)
        rel = Path(str(path).split("/corpus/", 1)[-1])
        collection = rel.parts[0]
        if collection in EXCLUDED_COLLECTIONS or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if collections is not None and collection not in collections:
            continue
        name = str(rel.with_suffix("")).replace("/", "__")
        if name.startswith(SLOW_SCORES):
            continue
        other = groups[collection].get(name)
        if other is None or _rank(path) < _rank(other):
            groups[collection][name] = path
    ordered = [sorted(g.items(), key=lambda item: stable_hash(item[0])) for _, g in sorted(groups.items())]
    out = []
    for i in range(max((len(g) for g in ordered), default=0)):
        out.extend(g[i] for g in ordered if i < len(g))
    return out


def _rank(path: Path) -> int:
    return FORMAT_PREFERENCE.index(path.suffix) if path.suffix in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE)


def convert_scores(root: Path, candidates, n_per_split: int | None, max_scores: int | None,
                   timeout_s: float, workers: int, skipped: dict[str, str]) -> list[str]:
    """Convert scores to ``root/scores/<name>.mid`` in candidate order until ``n_per_split``
    scores of each split (or else ``max_scores`` in all; None: every candidate) are converted.
    A score that fails or times out is recorded in ``skipped`` and replaced by the next one.
    """
    if n_per_split is not None:
        quota, key = {split: n_per_split for split in SPLITS}, split_of
    else:
        quota, key = {"all": len(candidates) if max_scores is None else max_scores}, lambda name: "all"
    done: Counter = Counter()
    chosen: list[str] = []
    position = 0
    while position < len(candidates) and any(done[k] < q for k, q in quota.items()):
        batch, pending = [], Counter()
        while position < len(candidates) and any(done[k] + pending[k] < q for k, q in quota.items()):
            name, path = candidates[position]
            position += 1
            k = key(name)
            if name in skipped or done[k] + pending[k] >= quota[k]:
                continue
            pending[k] += 1
            batch.append((name, str(path), str(root / "scores" / f"{name}.mid"), timeout_s))
        todo = [job for job in batch if not Path(job[2]).exists()]
        for name, reason in _run(convert_score, todo, workers, "music21 -> MIDI"):
            if reason:
                skipped[name] = reason
                log.warning("skipped score %s: %s", name, reason)
        for job in batch:
            if job[0] not in skipped:
                chosen.append(job[0])
                done[key(job[0])] += 1
    return chosen


class _Timeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`TimeoutError` in the current (main) thread after ``seconds``."""
    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Timeout:
        raise TimeoutError(f"took longer than {seconds:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def convert_score(job: tuple[str, str, str, float]) -> tuple[str, str | None]:
    """(name, score path, output .mid, timeout) -> (name, None) or (name, reason it was skipped).

    Runs in a worker process; music21 parsing takes ~0.1–30 s per score (string quartets are slow).
    """
    name, path, out, timeout = job
    import music21

    try:
        with time_limit(timeout):
            score = music21.converter.parse(path)
            if isinstance(score, music21.stream.Opus):  # e.g. abc files with one tune per voice
                score = score.mergeScores()
            try:
                midi_file = music21.midi.translate.music21ObjectToMidiFile(score)
            except music21.repeat.ExpanderException:  # inconsistent repeat marks: play as written
                for measure in score.recurse().getElementsByClass(music21.stream.Measure):
                    for side in ("leftBarline", "rightBarline"):
                        if isinstance(getattr(measure, side), music21.bar.Repeat):
                            setattr(measure, side, None)
                midi_file = music21.midi.translate.music21ObjectToMidiFile(score)
            tmp = Path(out).with_suffix(".part")
            midi_file.open(str(tmp), "wb")
            midi_file.write()
            midi_file.close()
            if not piano_notes(pretty_midi.PrettyMIDI(str(tmp))):  # music21 can write corrupt MIDI
                raise ValueError("no notes")
            tmp.replace(out)
    except Exception as err:  # noqa: BLE001 - music21 raises anything; every failure is a counted skip
        return name, f"{type(err).__name__}: {err}"[:200]
    return name, None


# --- rendering --------------------------------------------------------------------------------

_synths: dict[str, PianoSynth] = {}


def render_job(job: dict) -> tuple[str, str, float | None, str | None]:
    """Render one (performance, soundfont) to FLAC (a worker process keeps one synth per soundfont).

    Returns (piece, soundfont, seconds, None), or (piece, soundfont, None, reason) on failure.
    """
    out = Path(job["audio"])
    try:
        if not out.exists():
            _render_to(job, out)
        return job["piece"], job["soundfont"], sf.info(str(out)).duration, None
    except Exception as err:  # noqa: BLE001 - a failed render is a counted skip, not a crashed build
        return job["piece"], job["soundfont"], None, f"{type(err).__name__}: {err}"[:200]


def _render_to(job: dict, out: Path) -> None:
    synth = _synths.get(job["soundfont"])
    if synth is None:
        synth = _synths[job["soundfont"]] = PianoSynth(job["soundfont"], job["sample_rate"])
    audio = normalize_peak(synth.render(pretty_midi.PrettyMIDI(job["midi"]), program=job["program"]))
    if job["augment"]:
        audio = augment_audio(audio, job["sample_rate"], np.random.default_rng(job["seed"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.flac")
    sf.write(str(tmp), audio, job["sample_rate"], subtype="PCM_16")
    tmp.replace(out)


def _pool(workers: int):
    # fork: workers inherit the imported modules, and scripts need no `if __name__ == "__main__"`
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(workers)


def _run(fn, jobs, workers: int, desc: str):
    """Map ``fn`` over ``jobs`` with a process pool (or inline for ``workers <= 1``), with a progress bar."""
    if not jobs:
        return []
    if workers <= 1 or len(jobs) == 1:
        return [fn(j) for j in tqdm(jobs, desc=desc)]
    with _pool(min(workers, len(jobs))) as pool:
        return list(tqdm(pool.imap_unordered(fn, jobs, chunksize=1), total=len(jobs), desc=desc))


# --- the build --------------------------------------------------------------------------------

def _settings(cfg: Config, seed: int, plan: CorpusPlan) -> dict:
    return {"version": CORPUS_VERSION, "seed": seed, "sample_rate": cfg.audio.sample_rate,
            "excerpt_s": plan.excerpt_s, "generated_s": plan.generated_s}


def build_offline_corpus(root, cfg: Config, seed: int = 0, workers: int = 2,
                         plan: CorpusPlan | None = None) -> Path:
    """Build (or finish, or reuse) the offline corpus for ``cfg.scale`` at ``root``; return the
    manifest path. Sizes come from ``cfg.data`` (n_pieces per split, n_generated,
    augment_copies, soundfonts, test_soundfonts) and :data:`PLANS` (``plan`` overrides it).

    Rerunning skips every file that exists. A root built with another seed, sample rate or
    excerpt length is refused rather than mixed.
    """
    t0 = time.time()
    root = Path(root)
    plan = plan or PLANS.get(cfg.scale, PLANS["cpu"])
    data = cfg.data
    for name in list(data.soundfonts) + list(data.test_soundfonts):
        soundfont_path(name)  # fail now, with the package to install, not inside a worker
    settings = _settings(cfg, seed, plan)
    info_path = root / "corpus.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info and info.get("settings") != settings:
        raise DataError(f"{root} holds a corpus built with {info.get('settings')}, not {settings}; "
                        "choose another root or delete it")
    for sub in ("scores", "midi", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    skipped: dict[str, str] = dict(info.get("skipped_scores", {}))
    try:
        chosen = convert_scores(root, score_candidates(plan.collections), data.n_pieces, plan.max_scores,
                                plan.timeout_s, workers, skipped)
    finally:  # remember failures (they take up to timeout_s each) even if the build stops here
        info_path.write_text(json.dumps({**info, "settings": settings, "skipped_scores": skipped}, indent=1))
    bases = [(name, name.split("__")[0]) for name in chosen]

    performances = _write_performances(root, bases, data, seed, plan, skipped)
    jobs = _render_jobs(root, performances, cfg, seed)
    durations, failed = {}, {}
    for piece, soundfont, seconds, reason in _run(render_job, jobs, workers, "FluidSynth"):
        if reason:
            failed[f"{piece}@{soundfont}"] = reason
            log.warning("skipped render %s@%s: %s", piece, soundfont, reason)
        else:
            durations[(piece, soundfont)] = seconds
    rows = [{**job["row"], "seconds": round(durations[(job["piece"], job["soundfont"])], 3)}
            for job in jobs if (job["piece"], job["soundfont"]) in durations]
    rows.sort(key=lambda r: (r["split"], r["piece"], r["soundfont"]))
    manifest = root / MANIFEST
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    hours = sum(r["seconds"] for r in rows) / 3600
    info = {"settings": settings, "scale": cfg.scale, "data": vars(data), "skipped_scores": skipped,
            "failed_renders": failed,
            "hours": round(hours, 3), "build_seconds": round(time.time() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=1))
    if skipped or failed:
        log.warning("%d scores and %d of %d renders skipped (reasons in %s)",
                    len(skipped), len(failed), len(jobs), info_path)
    if not rows:
        raise DataError(f"the offline corpus at {root} is empty: every render failed ({failed})")
    log.info("offline corpus at %s: %d renders, %.2f h of audio", root, len(rows), hours)
    return manifest


def _write_performances(root: Path, bases, data, seed: int, plan: CorpusPlan, skipped: dict) -> list[dict]:
    """Write ``midi/<piece>.mid`` for every score copy and generated piece; return their rows."""
    out = []
    generated = [(f"generated__{i:04d}", "generated") for i in range(data.n_generated)]
    for base, source in tqdm(bases + generated, desc="performances"):
        split = split_of(base)
        copies = 1 if split == "test" else max(1, data.augment_copies)
        notes = None
        for copy in range(copies):
            piece = base if copy == 0 else f"{base}+{copy}"
            path = root / "midi" / f"{piece}.mid"
            if not path.exists():
                rng = np.random.default_rng([seed, stable_hash(piece)])
                if notes is None:
                    if source == "generated":
                        notes = piano_notes(generated_piece(np.random.default_rng([seed, stable_hash(base)]),
                                                            plan.generated_s))
                    else:
                        notes = piano_notes(pretty_midi.PrettyMIDI(str(root / "scores" / f"{base}.mid")))
                if not notes:
                    skipped[base] = "no notes after merging the parts"
                    break
                variation = draw_variation(notes, rng, augment=copy > 0, excerpt_s=plan.excerpt_s)
                performance = perform(notes, variation, rng)
                if not performance.instruments[0].notes:
                    skipped[piece] = "the excerpt has no notes"
                    continue
                tmp = path.with_suffix(".part")
                performance.write(str(tmp))
                tmp.replace(path)
            out.append({"piece": piece, "split": split, "midi": f"midi/{piece}.mid", "source": source,
                        "base": base, "copy": copy})
    return out


def _render_jobs(root: Path, performances: list[dict], cfg: Config, seed: int) -> list[dict]:
    """One job per (performance, soundfont); train/validation get a random piano program and
    audio augmentation, test gets program 0, no augmentation, and the unseen soundfonts too."""
    jobs = []
    for perf in performances:
        test = perf["split"] == "test"
        fonts = [(s, "seen") for s in cfg.data.soundfonts]
        if test:
            fonts += [(s, "unseen") for s in cfg.data.test_soundfonts if s not in cfg.data.soundfonts]
        for soundfont, timbre in fonts:
            job_seed = [seed, stable_hash(f"{perf['piece']}@{soundfont}")]
            program = 0 if test else int(np.random.default_rng(job_seed).integers(0, 3))
            audio = f"audio/{soundfont}/{perf['piece']}.flac"
            jobs.append({"piece": perf["piece"], "soundfont": soundfont, "midi": str(root / perf["midi"]),
                         "audio": str(root / audio), "program": program, "augment": not test,
                         "seed": job_seed + [1], "sample_rate": cfg.audio.sample_rate,
                         "row": {**perf, "soundfont": soundfont, "audio": audio, "program": program,
                                 "timbre": timbre}})
    jobs.sort(key=lambda j: (j["soundfont"], j["piece"]))  # a worker reuses its synth
    return jobs
