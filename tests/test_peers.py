"""The peers' runner (diffroll.evaluation.peers): one process over all pieces, MIDI read back, slow peers
cached by audio content; and Transkun's torchaudio stand-in against nnAudio's mel filters."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from diffroll.evaluation import peers

# A peer that writes, for each WAV, one note whose pitch is the WAV's length in tenths of a second
# (so each piece's MIDI is its own), and counts its runs in a file beside the jobs.
FAKE_DRIVER = r"""
import json, sys, time
from pathlib import Path
import pretty_midi, soundfile as sf
jobs = json.load(open(sys.argv[1]))
runs = Path(sys.argv[1]).parent.parent / "runs.txt"
with open(runs, "a") as f:
    f.write(f"{len(jobs)}\n")
times = []
for wav, mid in jobs:
    t = time.perf_counter()
    seconds = sf.info(wav).duration
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(90, 40 + int(round(seconds * 10)), 0.1, 0.5))
    pm.instruments.append(inst)
    pm.write(mid)
    times.append(time.perf_counter() - t)
print(json.dumps({"load_seconds": 0.0, "times": times, "model": "fake"}))
"""


@pytest.fixture
def fake_peer(monkeypatch, tmp_path):
    monkeypatch.setitem(peers.PEERS, "fake", peers.Peer("fake", "Fake", (), FAKE_DRIVER, cache_midi=True))
    monkeypatch.setattr(peers, "peer_python", lambda name: sys.executable)
    monkeypatch.setattr(peers.tempfile, "TemporaryDirectory",
                        lambda prefix: _TmpIn(tmp_path / "jobs"))
    return tmp_path


class _TmpIn:
    """A TemporaryDirectory stand-in inside the test's folder, so the driver's run counter lands there."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.path.mkdir(exist_ok=True)
        return str(self.path)

    def __exit__(self, *exc):
        return False


def pieces(*seconds):
    return [(f"p{i}", "g", np.full(int(s * 16000), 0.01, np.float32), []) for i, s in enumerate(seconds)]


def test_run_peer_reads_each_pieces_midi_and_caches_a_slow_peers_by_audio(fake_peer):
    cache = fake_peer / "cache"
    rows, info = peers.run_peer("fake", pieces(1.0, 2.0), 16000, cache=cache)
    assert [[n.pitch for n in r["est"]] for r in rows] == [[50], [60]]
    assert [r["seconds"] for r in rows] == [1.0, 2.0] and all(r["wall"] >= 0 for r in rows)
    assert info["cached"] == 0
    rows, info = peers.run_peer("fake", pieces(2.0, 3.0, 1.0), 16000, cache=cache)
    assert [[n.pitch for n in r["est"]] for r in rows] == [[60], [70], [50]]
    assert info["cached"] == 2
    assert (fake_peer / "runs.txt").read_text().split() == ["2", "1"], "only the unseen audio runs again"
    rows, info = peers.run_peer("fake", pieces(3.0), 16000, cache=cache)
    assert info["cached"] == 1 and (fake_peer / "runs.txt").read_text().split() == ["2", "1"]


def test_a_failing_peer_names_itself_and_its_error(fake_peer, monkeypatch):
    monkeypatch.setitem(peers.PEERS, "broken", peers.Peer("broken", "Broken", (), "raise SystemExit('no model file')",
                                                          cache_midi=False))
    with pytest.raises(peers.PeerError, match="broken failed: no model file"):
        peers.run_peer("broken", pieces(1.0), 16000, cache=fake_peer / "c")


def test_torchaudio_standin_matches_the_htk_mel_filters_of_nnaudio():
    from nnAudio.librosa_functions import get_mel

    module = types.ModuleType("standin")
    exec(peers.TORCHAUDIO_FUNCTIONAL, module.__dict__)
    fb = module.melscale_fbanks(n_freqs=4096 // 2 + 1, f_min=30, f_max=8000, n_mels=229, sample_rate=44100)
    ref = get_mel(44100, 4096, n_mels=229, fmin=30, fmax=8000, htk=True, norm=None).T
    assert fb.shape == (2049, 229) and fb.dtype == torch.float32
    np.testing.assert_allclose(fb.numpy(), ref, atol=1e-4)  # float32 against float64
    with pytest.raises(NotImplementedError, match="norm=None"):
        module.melscale_fbanks(2049, 30, 8000, 229, 44100, norm="slaney")


def test_short_pieces_are_joined_for_a_peer_that_pads_them_and_split_back_by_onset(fake_peer, monkeypatch):
    monkeypatch.setitem(peers.PEERS, "padded", peers.Peer("padded", "Padded", (), FAKE_DRIVER, cache_midi=True,
                                                          min_seconds=16.0))
    short = pieces(1.0, 2.0)
    rows, info = peers.run_peer("padded", short, 16000, cache=fake_peer / "c")
    assert info["joined"] == 2 and (fake_peer / "runs.txt").read_text().split() == ["1"]
    # the fake writes one note at 0.1 s of pitch 40 + 10 x 3.0 s: it falls in the first piece
    assert [[(n.onset, n.pitch) for n in r["est"]] for r in rows] == [[(pytest.approx(0.1), 70)], []]
    assert [r["seconds"] for r in rows] == [1.0, 2.0] and rows[1]["wall"] == pytest.approx(2 * rows[0]["wall"])
    joined, starts = peers.join_pieces(short, 16000)
    from diffroll.core.roll import Note
    split = peers.split_joined({"wall": 3.0, "est": [Note(1.5, 2.5, 60), Note(0.9, 1.2, 61), Note(2.99, 3.4, 62)]},
                               short, starts, 16000)
    assert [[(n.onset, n.offset, n.pitch) for n in r["est"]] for r in split] == \
        [[(0.9, pytest.approx(1.0), 61)], [(0.5, 1.5, 60), (pytest.approx(1.99), pytest.approx(2.4), 62)]]
