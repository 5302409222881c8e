"""The scores of the offline corpus: which music21 scores (and keyboard pieces) are taken, and
their conversion to MIDI (music21 is slow and sometimes hangs or writes corrupt MIDI: each score
in its own worker, under a time limit, checked after writing)."""
from __future__ import annotations

import logging
import signal
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import pretty_midi

from .jobs import run_jobs
from .loaders import split_of, stable_hash
from .performance import piano_notes

log = logging.getLogger("diffroll.corpus.scores")

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


# The keyboard music of the music21 corpus (solo piano, or voice and piano): the "keyboard"
# source, split by piece with a larger test share (:func:`keyboard_split`), never in "score".
KEYBOARD_SCORES = ("bach__bwv846", "beach__prayer_of_a_tired_child", "chopin__mazurka06-2", "cpebach__h186",
                   "joplin__maple_leaf_rag", "mozart__k545__movement1_exposition", "schoenberg__opus19__movement2",
                   "schoenberg__opus19__movement6", "schubert__Lindenbaum", "schumann_clara__opus17__movement3",
                   "schumann_clara__polonaise_op1n1", "schumann_clara__polonaise_op1n2",
                   "schumann_clara__polonaise_op1n3", "schumann_clara__polonaise_op1n4",
                   "schumann_robert__dichterliebe_no2", "schumann_robert__opus48no2", "liliuokalani__aloha_oe",
                   "johnson_j_r__lift_every_voice", "handel__rinaldo__Lascia_chio_pianga")


def score_candidates(collections: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of usable music21 scores, interleaved across collections so that a capped
    selection samples every composer rather than the 1,300 Palestrina movements alone.

    Names are the corpus path without its extension, ``/`` replaced by ``__`` (``bach__bwv66.6``);
    where a piece exists in several formats the preferred one (:data:`FORMAT_PREFERENCE`) is kept.
    """
    import music21  # here: importing it takes seconds, and only corpus builds need it

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
        if name.startswith(SLOW_SCORES) or name in KEYBOARD_SCORES:
            continue
        other = groups[collection].get(name)
        if other is None or _rank(path) < _rank(other):
            groups[collection][name] = path
    ordered = [sorted(g.items(), key=lambda item: stable_hash(item[0])) for _, g in sorted(groups.items())]
    out = []
    for i in range(max((len(g) for g in ordered), default=0)):
        out.extend(g[i] for g in ordered if i < len(g))
    return out


def keyboard_candidates() -> list[tuple[str, Path]]:
    """(name, path) of the music21 keyboard pieces (:data:`KEYBOARD_SCORES`) in this music21."""
    import music21  # here: importing it takes seconds, and only corpus builds need it

    found: dict[str, Path] = {}
    for path in map(Path, music21.corpus.getPaths()):
        name = str(Path(str(path).split("/corpus/", 1)[-1]).with_suffix("")).replace("/", "__")
        if name in KEYBOARD_SCORES and (name not in found or _rank(path) < _rank(found[name])):
            found[name] = path
    return sorted(found.items())


def _rank(path: Path) -> int:
    return FORMAT_PREFERENCE.index(path.suffix) if path.suffix in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE)


def convert_scores(root: Path, candidates, n_per_split: int | None, max_scores: int | None,
                   timeout_s: float, workers: int, skipped: dict[str, str]) -> list[str]:
    """Convert scores to ``root/scores/<name>.mid`` in candidate order until ``n_per_split``
    scores of each split (or else ``max_scores`` in all; None: every candidate) are converted.
    A score that fails or times out is recorded in ``skipped`` and replaced by the next one.
    """
    if n_per_split is not None:
        quota, key = {split: n_per_split for split in ("train", "validation", "test")}, split_of
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
        for name, reason in run_jobs(convert_score, todo, workers, "music21 -> MIDI"):
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
    import music21  # here: importing it takes seconds, and only corpus builds need it

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
