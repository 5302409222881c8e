"""The offline corpus: paired audio and piano rolls built from real scores and generated piano
music, on any machine.

MAESTRO (§4) cannot be downloaded everywhere, so the default dataset is built from four sources:

- ``score``: the scores shipped inside ``music21`` (Bach chorales, Palestrina, Monteverdi, Haydn
  and Mozart quartets, ...), re-voiced for two hands (:func:`diffroll.corpus.pianist.revoice_for_piano`)
  and pedalled in part of the training copies;
- ``keyboard``: the keyboard pieces of that corpus (:data:`diffroll.corpus.scores.KEYBOARD_SCORES`: Bach, Chopin,
  C. P. E. Bach, Joplin, Mozart, Schoenberg, Clara and Robert Schumann, Schubert, ...), pedalled;
- ``study``: generated studies that cover all 88 keys (:func:`diffroll.corpus.performance.generated_piece`);
- ``pianistic``: generated two-hand piano music with pianist's pedalling
  (:func:`diffroll.corpus.pianist.pianistic_piece`).

Each becomes MIDI performances (transposed, tempo-scaled, shaped dynamics, sustain pedal as CC 64,
sometimes silent gaps) rendered with FluidSynth (:mod:`diffroll.corpus.render`), the procedural piano
(:mod:`diffroll.corpus.pianosynth`) or the sampled Salamander grand (:mod:`diffroll.corpus.sampledpiano`).
Reference notes are sustain-extended (:attr:`RollConfig.sustain`).

Layout under ``root``::

    scores/<piece>.mid              music21's MIDI of each score (a cache: parsing is slow)
    midi/<piece>.mid                the performances; ``<piece>+k`` is augmented copy k
    audio/<timbre>/<piece>.flac     16 kHz renders (a soundfont, ``procedural``, ``procedural-heldout``, ``salamander``)
    manifest.csv                    piece, split, soundfont, audio, midi, seconds, source, ...
    corpus.json                     the settings and recipes it was built with, what was skipped

Splits are by piece (:func:`split_of`), so no copy of a piece crosses splits:

- ``train`` / ``validation``: rendered with the training timbres (:attr:`DataConfig.soundfonts`:
  TimGM6mb and the csound GM bank with a random GM piano program, the procedural piano with
  random parameters and, at ``cpu``, the sampled Salamander grand), ``renders_per_piece`` of them
  per performance, detuned and augmented;
- ``test`` (the first test split: scores and studies as written, no pedal): the training soundfonts
  ("seen timbre") and the held-out ones ("unseen timbre"), program 0, no augmentation;
- ``piano_test`` (the headline split): keyboard pieces held out by piece and pianistic pieces from
  their own seed, all pedalled, rendered only with unseen timbres: the held-out soundfonts and the
  procedural piano at held-out parameters (:data:`diffroll.corpus.synthparams.HELD_OUT_RANGES`), and at
  ``cpu`` and ``paper`` scale (:attr:`CorpusPlan.iowa_piano_test`) the Iowa recordings of a real
  Steinway (:mod:`diffroll.corpus.realpiano`), the one recorded instrument of the evaluation.

FluidR3_GM, FluidR3Mono and MuseScore_General in any variant are test timbres: a build that would
use one for training or validation is refused (:func:`check_training_timbres`). Building is
idempotent; a score that fails to convert and a render that fails or comes out silent are logged
skips, counted in ``corpus.json``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pretty_midi
import soundfile as sf
from tqdm.auto import tqdm

from ..core.config import Config
from .jobs import run_jobs
from .loaders import MANIFEST, MANIFEST_COLUMNS, SPLITS, DataError, split_of, stable_hash
from .performance import MIN_GAP_SECONDS, draw_variation, generated_piece, insert_gaps, longest_silence, perform, piano_notes
from .pedal import PedalSettings, add_pedal
from .pianist import pianistic_piece, revoice_for_piano
from .pianosynth import ProceduralPiano
from .synthparams import HELD_OUT_RANGES, TRAIN_RANGES, SynthParams
from .realpiano import check_iowa, render_iowa
from .render import AugmentSettings, PianoSynth, RenderError, augment_audio, normalize_peak, soundfont_path
from .sampledpiano import LAYERS as SAMPLED_LAYERS
from .sampledpiano import TRAIN_RANGES as SAMPLED_RANGES
from .sampledpiano import SampledParams, check_samples, render_sampled
from .scores import convert_scores, keyboard_candidates, score_candidates
from .soundboard import SoundboardSettings, radiate

log = logging.getLogger("diffroll.corpus.segments")

CORPUS_VERSION = 6  # bump when the same settings would build different files
PROCEDURAL, PROCEDURAL_HELDOUT = "procedural", "procedural-heldout"  # the procedural piano's timbres
SALAMANDER = "salamander"  # the sampled piano (diffroll.corpus.sampledpiano), a training timbre
IOWA = "iowa"  # real Steinway recordings (diffroll.corpus.realpiano): a piano_test timbre, never trained on
# Test timbres, matched case-insensitively in a soundfont's name and file name: never for training.
TEST_TIMBRE_MARKERS = ("fluidr3", "musescore", IOWA)
PIANO_TEST_SEED = 90_001  # the pianistic test pieces come from their own seed


@dataclass(frozen=True)
class CorpusPlan:
    """Sizes of the offline corpus at one scale (the counts of each source are in
    :class:`~diffroll.core.config.DataConfig`)."""

    max_scores: int | None  # scores used when cfg.data.n_pieces is None (None: all)
    excerpt_s: float | None  # each performance is at most this long (None: whole piece)
    generated_s: float  # length of each generated piece (studies and pianistic pieces)
    collections: tuple[str, ...] | None  # music21 folders to draw from (None: all but the excluded)
    timeout_s: float  # per-score limit on music21 parsing: a safety net that should never trigger
    iowa_piano_test: bool = False  # the piano test split also in the Iowa timbre (diffroll.corpus.realpiano; test only)


PLANS = {
    "smoke": CorpusPlan(max_scores=None, excerpt_s=20.0, generated_s=20.0, collections=("bach",), timeout_s=60),
    "cpu": CorpusPlan(max_scores=120, excerpt_s=45.0, generated_s=45.0, collections=None, timeout_s=60,
                      iowa_piano_test=True),
    "paper": CorpusPlan(max_scores=None, excerpt_s=None, generated_s=120.0, collections=None, timeout_s=300,
                        iowa_piano_test=True),
}


def keyboard_split(name: str) -> str:
    """train / validation / piano_test (60/10/30) from a stable hash of a keyboard piece's name:
    there are few keyboard pieces, and they are the real-music part of the piano test split."""
    bucket = stable_hash(name) % 100
    return "train" if bucket < 60 else "validation" if bucket < 70 else "piano_test"


def generated_split(name: str) -> str:
    """train / validation (90/10) for generated pianistic pieces (their test pieces have their own seed)."""
    return "validation" if stable_hash(name) % 10 == 0 else "train"


def piece_split(source: str, base: str) -> str:
    """The split of every performance of a base piece: by score name (:func:`split_of`) for scores
    and studies, :func:`keyboard_split` for keyboard pieces, :func:`generated_split` for pianistic
    pieces, except the ``pianistic-test__*`` pieces of the piano test split."""
    if source == "keyboard":
        return keyboard_split(base)
    if source == "pianistic":
        return "piano_test" if base.startswith("pianistic-test__") else generated_split(base)
    return split_of(base)


def check_training_timbres(soundfonts) -> None:
    """Refuse a training timbre that is a test timbre in any variant (FluidR3_GM, FluidR3Mono,
    MuseScore_General, small or lossless): by its name and by its file's name."""
    for name in soundfonts:
        if name == PROCEDURAL_HELDOUT:
            raise DataError(f"{name!r} is a test timbre (held-out procedural parameters): not for training")
        names = [name.lower()] + ([] if name in (PROCEDURAL, SALAMANDER) or any(
            marker in name.lower() for marker in TEST_TIMBRE_MARKERS) else [soundfont_path(name).name.lower()])
        if any(marker in n for marker in TEST_TIMBRE_MARKERS for n in names):
            raise DataError(f"timbre {name!r} is a test timbre (FluidR3 / MuseScore General in any variant, or the "
                            "Iowa piano recordings) and never reaches training or validation; choose another in "
                            "DataConfig.soundfonts")


# --- rendering --------------------------------------------------------------------------------

_synths: dict[str, PianoSynth] = {}


def render_job(job: dict) -> tuple[str, str, float | None, str | None]:
    """Render one (performance, timbre) to FLAC (a worker process keeps one synth per soundfont).

    Returns (piece, timbre, seconds, None), or (piece, timbre, None, reason) on failure.
    """
    out = Path(job["audio"])
    try:
        if not out.exists():
            _render_to(job, out)
        return job["piece"], job["soundfont"], sf.info(str(out)).duration, None
    except Exception as err:  # noqa: BLE001 - a failed render is a counted skip, not a crashed build
        return job["piece"], job["soundfont"], None, f"{type(err).__name__}: {err}"[:200]


def render_audio(job: dict, midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """The peak-normalised audio of one job: FluidSynth with a soundfont and GM program, or the
    procedural piano with parameters drawn from the job's seed (held-out ranges for
    ``procedural-heldout``; a job's ``synth`` dict replaces some of them), or the sampled piano with its damper and velocity curve drawn from
    the seed; the job's detune in every case; a job's ``soundboard`` dict (:class:`SoundboardSettings`) may
    take its bass fundamentals away (:func:`radiate`). Raises RenderError if it is silent."""
    if job["soundfont"] in (PROCEDURAL, PROCEDURAL_HELDOUT):
        params = SynthParams.random(np.random.default_rng(job["seed"]), held_out=job["soundfont"] == PROCEDURAL_HELDOUT)
        params = dataclasses.replace(params, tuning_cents=job["detune"], **job.get("synth", {}))
        audio = ProceduralPiano(params, job["sample_rate"]).render(midi)
    elif job["soundfont"] == SALAMANDER:
        params = dataclasses.replace(SampledParams.random(np.random.default_rng(job["seed"])), tuning_cents=job["detune"])
        audio = render_sampled(midi, params, job["sample_rate"])
    elif job["soundfont"] == IOWA:
        audio = render_iowa(midi, job["sample_rate"])
    else:
        synth = _synths.get(job["soundfont"])
        if synth is None:
            synth = _synths[job["soundfont"]] = PianoSynth(job["soundfont"], job["sample_rate"])
        audio = synth.render(midi, program=job["program"], detune_cents=job["detune"])
    if not np.abs(audio).max(initial=0.0) > 1e-5:
        raise RenderError("the render came out silent")
    if "soundboard" in job:
        audio = radiate(audio, job["sample_rate"], job["soundfont"], np.random.default_rng(job["seed"] + [3]),
                        SoundboardSettings(**job["soundboard"]))
    return normalize_peak(audio)


def _render_to(job: dict, out: Path) -> None:
    """Render, augment (noise always where the performance has silent gaps), write FLAC atomically.
    A job's ``room_probability`` replaces the room and microphone's share (:class:`RoomSettings`)."""
    midi = pretty_midi.PrettyMIDI(job["midi"])
    audio = render_audio(job, midi)
    if job["augment"]:
        settings = AugmentSettings()
        if "room_probability" in job:
            settings = dataclasses.replace(settings, room=dataclasses.replace(settings.room,
                                                                              probability=job["room_probability"]))
        audio = augment_audio(audio, job["sample_rate"], np.random.default_rng(job["seed"] + [1]), settings,
                              force_noise=longest_silence(midi) >= MIN_GAP_SECONDS)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.flac")
    sf.write(str(tmp), audio, job["sample_rate"], subtype="PCM_16")
    tmp.replace(out)


# --- the build --------------------------------------------------------------------------------

def _settings(cfg: Config, seed: int, plan: CorpusPlan) -> dict:
    """What the files depend on: a root built with other settings is refused, not mixed."""
    return {"version": CORPUS_VERSION, "seed": seed, "sample_rate": cfg.audio.sample_rate,
            "excerpt_s": plan.excerpt_s, "generated_s": plan.generated_s}


def recipes() -> dict:
    """The pedalling, augmentation, procedural- and sampled-piano ranges, saved in every ``corpus.json``."""
    return {"pedal": dataclasses.asdict(PedalSettings()), "augment": dataclasses.asdict(AugmentSettings()),
            "soundboard": dataclasses.asdict(SoundboardSettings()),
            "procedural_train_ranges": TRAIN_RANGES, "procedural_heldout_ranges": HELD_OUT_RANGES,
            "sampled_train_ranges": SAMPLED_RANGES, "sampled_layers": list(SAMPLED_LAYERS)}


def read_corpus_info(root: Path) -> dict:
    """``corpus.json`` of a corpus ({} when there is none); a DataError naming it when it is corrupt."""
    path = Path(root) / "corpus.json"
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it (and the corpus folder if in doubt) "
                        "to rebuild") from err
    if not isinstance(info, dict):
        raise DataError(f"{path} does not hold a corpus description (a JSON object); delete it to rebuild")
    return info


def build_offline_corpus(root, cfg: Config, seed: int = 0, workers: int = 2,
                         plan: CorpusPlan | None = None, splits: Sequence[str] = SPLITS) -> Path:
    """Build (or finish, or reuse) the offline corpus for ``cfg.scale`` at ``root``; return the
    manifest path. Sizes come from ``cfg.data`` (n_pieces per split, n_generated, n_pianistic,
    n_piano_test, keyboard_copies, augment_copies, renders_per_piece, soundfonts, test_soundfonts)
    and :data:`PLANS` (``plan`` overrides it). Only the renders of ``splits`` are made (a trainer
    needs train and validation); the manifest lists every render on disk.

    Rerunning skips every file that exists. A root built with another seed, sample rate or
    excerpt length is refused rather than mixed.
    """
    t0 = time.time()
    root = Path(root)
    plan = plan or PLANS.get(cfg.scale, PLANS["cpu"])
    data = cfg.data
    check_training_timbres(data.soundfonts)
    tests = set(splits) & {"test", "piano_test"}
    for name in list(data.soundfonts) + (list(data.test_soundfonts) if tests else []):
        if name == SALAMANDER:
            check_samples()  # fail now, with the command that fetches them
        elif name not in (PROCEDURAL, PROCEDURAL_HELDOUT):
            soundfont_path(name)  # fail now, with the package to install, not inside a worker
    if plan.iowa_piano_test and "piano_test" in splits:
        check_iowa()  # fail now, with the command that fetches them
    settings = _settings(cfg, seed, plan)
    info_path = root / "corpus.json"
    info = read_corpus_info(root)
    if info and info.get("settings") != settings:
        raise DataError(f"{root} holds a corpus built with {info.get('settings')}, not {settings}; "
                        "choose another root or delete it")
    for sub in ("scores", "midi", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    skipped: dict[str, str] = dict(info.get("skipped_scores", {}))
    chosen, keyboard = _chosen_scores(root, info, data)
    if chosen is None:
        try:
            chosen = convert_scores(root, score_candidates(plan.collections), data.n_pieces, plan.max_scores,
                                    plan.timeout_s, workers, skipped)
            keyboard = []
            if data.keyboard_copies:
                keys = keyboard_candidates()
                keyboard = convert_scores(root, keys, None, len(keys), plan.timeout_s, workers, skipped)
        finally:  # remember failures (they take up to timeout_s each) even if the build stops here
            info_path.write_text(json.dumps({**info, "settings": settings, "skipped_scores": skipped}, indent=1))

    performances = _write_performances(root, chosen, keyboard, data, seed, plan, skipped)
    jobs = _render_jobs(root, performances, cfg, seed, iowa=plan.iowa_piano_test)
    wanted = [j for j in jobs if j["row"]["split"] in splits]
    durations = {(j["piece"], j["soundfont"]): sf.info(j["audio"]).duration for j in jobs
                 if j["row"]["split"] not in splits and Path(j["audio"]).is_file()}
    failed = {}
    for piece, soundfont, seconds, reason in run_jobs(render_job, wanted, workers, "render"):
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
    info = {"settings": settings, "scale": cfg.scale, "data": vars(data), "recipes": recipes(),
            "scores": chosen, "keyboard": keyboard, "skipped_scores": skipped, "failed_renders": failed,
            "counts": {"performances": len(performances), "renders": len(rows), "skipped_scores": len(skipped),
                       "failed_renders": len(failed)},
            "hours": round(hours, 3), "build_seconds": round(time.time() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=1))
    if skipped or failed:
        log.warning("%d scores and %d of %d renders skipped (reasons in %s)",
                    len(skipped), len(failed), len(wanted), info_path)
    if not rows:
        raise DataError(f"the offline corpus at {root} is empty: every render failed ({failed})")
    log.info("offline corpus at %s: %d renders, %.2f h of audio", root, len(rows), hours)
    return manifest


def _chosen_scores(root: Path, info: dict, data) -> tuple[list[str] | None, list[str]]:
    """The scores and keyboard pieces a finished build of the same data settings chose, when all
    their MIDI files are still there: a rebuild (or one on a machine without music21, from a copy
    of ``scores/``, ``midi/`` and ``corpus.json``) then needs no music21. (None, []) otherwise."""
    chosen, keyboard = info.get("scores"), info.get("keyboard")
    where = ("path",)  # where the corpus lives is not what it holds
    same = {k: v for k, v in info.get("data", {}).items() if k not in where} == \
        {k: v for k, v in vars(data).items() if k not in where}
    if chosen is None or keyboard is None or not same:
        return None, []
    if all((root / "scores" / f"{name}.mid").is_file() for name in chosen + keyboard):
        return list(chosen), list(keyboard)
    return None, []


@dataclass(frozen=True)
class _Spec:
    """One performance to write: its name, split, source, base piece and copy number."""

    piece: str
    split: str
    source: str
    base: str
    copy: int


def performance_specs(scores: list[str], keyboard: list[str], data) -> list[_Spec]:
    """Every performance of the corpus, from its sources and sizes (no files touched)."""
    bases = ([("score", b, data.augment_copies) for b in scores]
             + [("keyboard", b, data.keyboard_copies) for b in keyboard]
             + [("study", f"generated__{i:04d}", data.augment_copies) for i in range(data.n_generated)]
             + [("pianistic", f"pianistic__{i:04d}", 1) for i in range(data.n_pianistic)]
             + [("pianistic", f"pianistic-test__{i:04d}", 1) for i in range(data.n_piano_test)])
    specs = []
    for source, base, copies in bases:
        split = piece_split(source, base)
        copies = 1 if split in ("test", "piano_test") else max(1, copies)
        specs += [_Spec(base if c == 0 else f"{base}+{c}", split, source, base, c) for c in range(copies)]
    return specs


def make_performance(spec: _Spec, root: Path, data, seed: int, plan: CorpusPlan) -> pretty_midi.PrettyMIDI:
    """The MIDI performance of one spec (the same for the same seed).

    Scores, keyboard pieces and studies go through :func:`~diffroll.corpus.performance.perform`
    (copy 0 as written, later copies transposed, tempo-scaled, excerpted elsewhere); training and
    validation copies of scores are re-voiced for two hands with ``revoice_probability``; keyboard
    pieces, pianistic pieces and training copies with ``pedal_probability`` get pedalling; training
    and validation performances get silent gaps with ``gap_probability``. The first test split
    stays as written: no re-voicing, no pedal, no gaps.
    """
    rng = np.random.default_rng([seed, stable_hash(spec.piece)])
    training = spec.split in ("train", "validation")
    if spec.source == "pianistic":
        namespace = PIANO_TEST_SEED if spec.split == "piano_test" else 0
        pm = pianistic_piece(np.random.default_rng([seed, namespace, stable_hash(spec.base)]), plan.generated_s)
    else:
        if spec.source == "study":
            notes = piano_notes(generated_piece(np.random.default_rng([seed, stable_hash(spec.base)]), plan.generated_s))
        else:
            notes = piano_notes(pretty_midi.PrettyMIDI(str(root / "scores" / f"{spec.base}.mid")))
        if not notes:
            raise DataError("no notes after merging the parts")
        if spec.source == "score" and training and rng.random() < data.revoice_probability:
            notes = revoice_for_piano(notes, rng)
        pm = perform(notes, draw_variation(notes, rng, augment=spec.copy > 0, excerpt_s=plan.excerpt_s), rng)
        pedalled = spec.source == "keyboard" or (training and rng.random() < data.pedal_probability)
        if pedalled and pm.instruments[0].notes:
            add_pedal(pm, rng)
    if training and pm.instruments[0].notes and rng.random() < data.gap_probability:
        insert_gaps(pm, rng, n_gaps=int(rng.integers(1, 3)))
    return pm


def _write_performances(root: Path, scores: list[str], keyboard: list[str], data, seed: int, plan: CorpusPlan,
                        skipped: dict) -> list[dict]:
    """Write ``midi/<piece>.mid`` for every performance; return their manifest rows."""
    out = []
    for spec in tqdm(performance_specs(scores, keyboard, data), desc="performances"):
        path = root / "midi" / f"{spec.piece}.mid"
        if not path.exists():
            try:
                pm = make_performance(spec, root, data, seed, plan)
            except DataError as err:
                skipped[spec.piece] = str(err)
                continue
            if not pm.instruments[0].notes:
                skipped[spec.piece] = "the excerpt has no notes"
                continue
            tmp = path.with_suffix(".part")
            pm.write(str(tmp))
            tmp.replace(path)
        out.append({"piece": spec.piece, "split": spec.split, "midi": f"midi/{spec.piece}.mid",
                    "source": spec.source, "base": spec.base, "copy": spec.copy})
    return out


def _render_jobs(root: Path, performances: list[dict], cfg: Config, seed: int, iowa: bool = False) -> list[dict]:
    """One job per (performance, timbre).

    - train / validation: ``renders_per_piece`` of the training timbres (drawn per piece), a GM
      piano program from ``programs``, a detune within ±``detune_cents``, the soundboard's weak bass
      (:class:`SoundboardSettings`), audio augmentation;
    - test: every training soundfont ("seen") and every test soundfont ("unseen"), program 0;
    - piano_test: the test soundfonts and the held-out procedural piano ("unseen"), program 0,
      and with ``iowa`` the Iowa recordings of a real Steinway (:mod:`diffroll.corpus.realpiano`).
    """
    data = cfg.data
    fluid_fonts = [s for s in data.soundfonts if s not in (PROCEDURAL, SALAMANDER)]
    soundboard = dataclasses.asdict(SoundboardSettings())
    jobs = []
    for perf in performances:
        split = perf["split"]
        pick = np.random.default_rng([seed, stable_hash(perf["piece"]), 7])
        if split in ("train", "validation"):
            k = min(max(1, data.renders_per_piece), len(data.soundfonts))
            fonts = [(str(f), "seen") for f in pick.choice(data.soundfonts, size=k, replace=False)]
        elif split == "test":
            fonts = [(s, "seen") for s in fluid_fonts]
            fonts += [(s, "unseen") for s in data.test_soundfonts if s not in data.soundfonts]
        else:
            fonts = [(s, "unseen") for s in data.test_soundfonts] + [(PROCEDURAL_HELDOUT, "unseen")]
            fonts += [(IOWA, "unseen")] if iowa else []
        for soundfont, timbre in fonts:
            job_seed = [seed, stable_hash(f"{perf['piece']}@{soundfont}")]
            draw = np.random.default_rng(job_seed + [2])
            augment = split in ("train", "validation")
            program = int(draw.choice(data.programs)) if augment and soundfont in fluid_fonts else 0
            detune = round(float(draw.uniform(-data.detune_cents, data.detune_cents)), 2) if augment else 0.0
            audio = f"audio/{soundfont}/{perf['piece']}.flac"
            jobs.append({"piece": perf["piece"], "soundfont": soundfont, "midi": str(root / perf["midi"]),
                         "audio": str(root / audio), "program": program, "detune": detune, "augment": augment,
                         "seed": job_seed, "sample_rate": cfg.audio.sample_rate,
                         "row": {**perf, "soundfont": soundfont, "audio": audio, "program": program,
                                 "detune": detune, "timbre": timbre},
                         **({"soundboard": soundboard} if augment else {})})
    jobs.sort(key=lambda j: (j["soundfont"], j["piece"]))  # a worker reuses its synth
    return jobs
