"""The data layer: loaders on real layouts, the offline corpus, the segment cache, bad input."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from diffroll import data, render
from diffroll.audio import AudioError, MelFrontend
from diffroll.config import LOWEST_MIDI, get_config
from diffroll.corpus import CorpusPlan, build_offline_corpus
from diffroll.loaders import MAPS_TEST_GROUPS, DataError, Piece, read_manifest, split_of
from diffroll.roll import MidiError

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
    with caplog.at_level(logging.WARNING, logger="diffroll.data"):
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
    code = "from diffroll.loaders import split_of; print(','.join(split_of(f'composer__piece{i}') for i in range(50)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.strip()  # unlike hash()
    assert out.split(",") == splits[:50]


TINY = CorpusPlan(max_scores=None, excerpt_s=12.0, generated_s=12.0, collections=("bach",), timeout_s=30)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    cfg = get_config("smoke", n_pieces=1, n_generated=2, augment_copies=2)
    root = tmp_path_factory.mktemp("offline")
    build_offline_corpus(root, cfg, seed=0, workers=2, plan=TINY)
    return root, cfg


def test_offline_corpus_layout_splits_and_timbres(tiny_corpus):
    root, cfg = tiny_corpus
    rows = read_manifest(root)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "validation", "test")}
    assert all(by_split.values()), "every split has pieces"
    for r in rows:
        assert (root / r["audio"]).is_file() and (root / r["midi"]).is_file()
        assert r["split"] == split_of(r["base"])  # copies never leave their score's split
        assert abs(sf.info(str(root / r["audio"])).duration - float(r["seconds"])) < 1e-3
    train = [r for r in by_split["train"] + by_split["validation"] if r["source"] != "generated"]
    assert {r["copy"] for r in train} == {"0", "1"}, "augmented copies of train/validation scores"
    assert {r["soundfont"] for r in by_split["train"]} == {"TimGM6mb"}
    test = by_split["test"]
    assert {(r["soundfont"], r["timbre"]) for r in test} == {("TimGM6mb", "seen"), ("FluidR3_GM", "unseen")}
    assert {r["program"] for r in test} == {"0"} and {r["copy"] for r in test} == {"0"}

    assert {p.group for p in data.list_pieces(root, split="validation")} == {"TimGM6mb"}
    assert {p.group for p in data.list_pieces(root, split="test")} == {"TimGM6mb", "FluidR3_GM"}
    assert {p.group for p in data.list_pieces(root, split="test", soundfonts=["FluidR3_GM"])} == {"FluidR3_GM"}
    with pytest.raises(DataError, match="MuseScore_General"):
        data.list_pieces(root, split="test", soundfonts=["MuseScore_General"])


def test_offline_corpus_rebuild_is_idempotent_and_deterministic(tiny_corpus, tmp_path):
    root, cfg = tiny_corpus
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".mid", ".flac"))
    stamps = [p.stat().st_mtime_ns for p in files]
    build_offline_corpus(root, cfg, seed=0, workers=1, plan=TINY)
    assert [p.stat().st_mtime_ns for p in files] == stamps, "a rerun rewrote existing files"

    other = tmp_path / "again"  # the same seed elsewhere gives the same performances
    build_offline_corpus(other, cfg, seed=0, workers=1, plan=TINY)
    for p in (root / "midi").glob("*.mid"):
        assert (other / "midi" / p.name).read_bytes() == p.read_bytes()
    aug = next(r for r in read_manifest(root) if r["split"] == "train" and r["copy"] == "1")
    a, b = sf.read(str(root / aug["audio"]))[0], sf.read(str(other / aug["audio"]))[0]
    # FluidSynth is not bit-exact between two synth instances under load, so compare energies: a
    # different augmentation draw (noise at 15-45 dB SNR, EQ, gain) differs by >= -43 dB, far above this
    assert a.shape == b.shape
    assert np.sqrt(np.mean((a - b) ** 2)) < 1e-3 * np.sqrt(np.mean(a ** 2))

    with pytest.raises(DataError, match="another root"):
        build_offline_corpus(root, cfg, seed=1, workers=1, plan=TINY)


def test_generated_pieces_cover_the_whole_keyboard(tiny_corpus):
    root, _ = tiny_corpus
    originals = [m for m in (root / "midi").glob("generated__*.mid") if "+" not in m.stem]
    assert len(originals) == 2
    for midi in originals:  # (augmented copies may be transposed or excerpted)
        pitches = {n.pitch for n in pretty_midi.PrettyMIDI(str(midi)).instruments[0].notes}
        assert pitches >= set(range(21, 109))


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
    with caplog.at_level(logging.INFO, logger="diffroll.data"):
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
    with caplog.at_level(logging.WARNING, logger="diffroll.data"):
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
    from diffroll.corpus import convert_score, score_candidates

    name, path = score_candidates(("bach",))[0]
    _, reason = convert_score((name, str(path), str(tmp_path / "slow.mid"), 0.001))
    assert reason.startswith("TimeoutError") and not (tmp_path / "slow.mid").exists()
    broken = tmp_path / "broken.xml"
    broken.write_text("<score-partwise><part id='P1'><measure number='1'>")
    _, reason = convert_score(("broken", str(broken), str(tmp_path / "broken.mid"), 30))
    assert reason and not (tmp_path / "broken.mid").exists()


def test_performances_merge_parts_and_keep_notes_audible():
    from diffroll.performance import MAX_NOTE_SECONDS, piano_notes

    pm = make_midi([(0.0, 30.0, 60), (1.0, 2.0, 64), (1.5, 2.5, 64), (3.0, 4.0, 12)])
    second = pretty_midi.Instrument(program=52)  # a choir part: merged onto the piano
    second.notes = [pretty_midi.Note(80, 64, 1.0, 1.8), pretty_midi.Note(80, 110, 5.0, 6.0)]
    pm.instruments.append(second)
    notes = [(n.start, n.end, n.pitch) for n in piano_notes(pm)]
    assert notes == [(0.0, MAX_NOTE_SECONDS, 60),  # a tie of 30 s ends when the piano has decayed
                     (1.0, 1.5, 64), (1.5, 2.5, 64),  # unison doubled once; re-struck key ends the note
                     (3.0, 4.0, 24), (5.0, 6.0, 98)]  # octave-folded into A0..C8
