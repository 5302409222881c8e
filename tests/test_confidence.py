"""Per-note confidence: matching notes across samples, the majority vote, the support of notes read
another way, calibration metrics."""
import mir_eval
import numpy as np
import pytest

from diffroll.core.roll import array_notes, note_array
from diffroll.transcription.confidence import (Calibration, cluster_notes, consensus, expected_calibration_error,
                                 fit_calibration, reliability, support, true_positives, vote_bins)
from diffroll.core.logistic import fit_logistic
from diffroll.core.roll import Note

F = 1 / 31.25  # one frame


def test_identical_samples_are_certain_and_one_sample_is_itself():
    notes = [Note(0.0, 0.5, 60, 70), Note(0.5, 1.0, 64, 90), Note(0.5, 0.8, 60, 50)]
    kept, conf = consensus([notes] * 4)
    assert kept == sorted(notes) and conf == [1.0] * 3
    kept, conf = consensus([notes])
    assert kept == sorted(notes) and conf == [1.0] * 3
    assert consensus([[], [], []]) == ([], [])


def test_onset_jitter_within_50_ms_is_one_note():
    samples = [[Note(0.0, 0.5, 60)], [Note(F, 0.5, 60)], [Note(F, 0.6, 60)], [Note(2 * F, 0.4, 60)]]
    (cand,) = cluster_notes(samples)
    assert cand.votes == 4 and cand.confidence == 1.0
    assert cand.note.onset == pytest.approx(F)  # the centre gathering all four
    assert cand.note.offset == 0.5  # the lower median of 0.4, 0.5, 0.5, 0.6


def test_majority_rule_and_minority_candidates():
    a, b = Note(1.0, 1.5, 60, 40), Note(3.0, 3.2, 72, 100)
    samples = [[a, b], [a, b], [a], [Note(5.0, 5.5, 50)]]
    cands = cluster_notes(samples)
    assert [(c.note.pitch, c.votes) for c in cands] == [(60, 3), (72, 2), (50, 1)]
    assert sum(c.votes for c in cands) == sum(len(s) for s in samples)  # every note counted once
    kept, conf = consensus(samples)  # a majority of 4 is 3
    assert kept == [a] and conf == [0.75]
    kept, conf = consensus(samples, min_votes=2)
    assert kept == [a, b] and conf == [0.75, 0.5]
    with pytest.raises(ValueError, match="min_votes"):
        consensus(samples, min_votes=5)


def test_pitch_and_tolerance_separate_notes():
    samples = [[Note(0.0, 0.5, 60)], [Note(0.0, 0.5, 61)], [Note(0.06, 0.5, 60)]]
    cands = cluster_notes(samples)
    assert sorted((c.note.pitch, c.votes) for c in cands) == [(60, 1), (60, 1), (61, 1)]
    # exactly 50 ms apart still matches (mir_eval's rule is <= tolerance)
    assert cluster_notes([[Note(0.0, 0.5, 60)], [Note(0.05, 0.5, 60)]])[0].votes == 2


def test_each_sample_counts_once_per_note():
    """Sample 0 plays the key twice within 50 ms; it still gives one vote to each candidate."""
    samples = [[Note(0.0, 0.03, 60), Note(0.04, 0.5, 60)], [Note(0.02, 0.5, 60)]]
    cands = cluster_notes(samples)
    assert sorted(c.votes for c in cands) == [1, 2]
    for c in cands:
        assert c.votes <= 2


def test_confidence_is_the_share_of_samples_with_a_matching_note():
    """The definition, on random samples: every member of a candidate matches its note (same
    pitch, onset within 50 ms), votes never exceed the samples that hold such a note, and the
    vote conserves notes."""
    rng = np.random.default_rng(0)
    truth = [(float(t), int(p)) for t, p in zip(rng.uniform(0, 20, 60), rng.integers(60, 64, 60))]
    samples = []
    for _ in range(5):
        notes = [Note(round(t / F + rng.integers(-2, 3)) * F, t + 0.3, p, 80) for t, p in truth if rng.random() < 0.8]
        samples.append(sorted(set(notes)))
    cands = cluster_notes(samples)
    assert sum(c.votes for c in cands) == sum(len(s) for s in samples)
    for c in cands:
        holders = sum(any(n.pitch == c.note.pitch and abs(n.onset - c.note.onset) <= 0.05 + 1e-9 for n in s)
                      for s in samples)
        assert 1 <= c.votes <= holders
    kept, conf = consensus(samples)
    assert all(0.5 < x <= 1.0 for x in conf) and len(kept) == len(conf)


def test_support_is_the_share_of_samples_matching_each_note():
    notes = [Note(0.0, 0.5, 60, 70), Note(0.5, 1.0, 64, 90), Note(2.0, 2.5, 67, 50)]
    samples = [[Note(F, 0.4, 60), Note(0.5, 1.0, 64)],  # 60 within 50 ms, 64 exact
               [Note(0.1, 0.5, 60), Note(0.5 + F, 0.9, 64)],  # 60 is 100 ms late: no match
               note_array([Note(0.5, 1.0, 65), Note(2.0, 2.1, 67)])]  # a neighbouring key matches nothing
    assert support(notes, samples) == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    assert support(notes, [notes]) == [1.0, 1.0, 1.0] and support([], samples) == []
    # one sample's note backs one note only (mir_eval's matching), even when two notes are near it
    assert support([Note(0.0, 0.2, 60), Note(F, 0.3, 60)], [[Note(0.0, 0.3, 60)]]) == [1.0, 0.0]
    rng = np.random.default_rng(1)  # against the rule written out, on random samples
    for _ in range(5):
        onsets, pitches = rng.uniform(0, 10, 20) // F * F, rng.integers(60, 63, 20)
        est = sorted({Note(float(t), float(t) + 0.3, int(p)) for t, p in zip(onsets, pitches)})
        k = [[Note(n.onset + int(rng.integers(-3, 4)) * F, n.offset, n.pitch) for n in est if rng.random() < 0.7]
             for _ in range(3)]
        shares = support(est, k)
        assert all(s in (0.0, 1 / 3, 2 / 3, 1.0) for s in shares)
        assert sum(shares) * 3 == pytest.approx(sum(true_positives(sample, est).sum() for sample in k))
    with pytest.raises(ValueError, match="at least one sample"):
        support(notes, [])


def test_kept_notes_of_one_key_do_not_overlap():
    samples = [[Note(0.0, 1.0, 60), Note(0.5, 1.0, 60)]] * 2 + [[Note(0.0, 0.4, 60), Note(0.5, 1.0, 60)]]
    kept, _ = consensus(samples)
    assert kept == [Note(0.0, 0.5, 60), Note(0.5, 1.0, 60)]


def test_arrays_and_lists_give_the_same_vote():
    samples = [[Note(0.0, 0.5, 60, 70), Note(1.0, 1.5, 62, 20)], [Note(F, 0.5, 60, 90)], [Note(1.0, 1.4, 62, 30)]]
    arrays = [note_array(s) for s in samples]
    assert arrays[0].shape == (2, 4) and array_notes(arrays[0]) == samples[0]
    assert consensus(arrays) == consensus(samples)
    assert note_array([]).shape == (0, 4)


def test_true_positives_follow_mir_eval_matching():
    ref = [Note(1.0, 2.0, 60), Note(3.0, 3.5, 64)]
    est = [Note(1.04, 1.5, 60), Note(1.0, 2.0, 61), Note(3.06, 3.5, 64), Note(1.02, 2.0, 60)]
    np.testing.assert_array_equal(true_positives(ref, est), [True, False, False, False])  # one match per reference
    assert true_positives([], est).tolist() == [False] * 4
    assert true_positives(ref, []).shape == (0,)


def test_true_positives_run_in_parts_match_as_many_as_mir_eval_on_the_whole():
    """Pitch by pitch and in parts of a few hundred notes (bounded memory for long transcriptions):
    as many matches as mir_eval run on everything at once (here the very same notes), each a real
    match (same pitch, onset within 50 ms), on dense random notes with onsets at the tolerance's edge."""
    rng = np.random.default_rng(3)
    for n, m in ((1500, 1200), (40, 900), (700, 1)):
        ref = [Note(float(t), float(t) + 0.2, int(p)) for t, p in zip(rng.uniform(0, 90, n) // F * F,
                                                                        rng.integers(60, 63, n))]
        est = [Note(ref[i].onset + float(rng.choice([-0.05, -0.02, 0.0, 0.05, 0.07])), ref[i].offset, ref[i].pitch)
               for i in rng.integers(0, n, m)]
        r, e = np.array([x[:3] for x in ref]), np.array([x[:3] for x in est])
        pairs = mir_eval.transcription.match_notes(r[:, :2], mir_eval.util.midi_to_hz(r[:, 2]), e[:, :2],
                                                   mir_eval.util.midi_to_hz(e[:, 2]), offset_ratio=None)
        whole = np.zeros(m, dtype=bool)
        whole[[j for _, j in pairs]] = True
        hit = true_positives(ref, est)
        assert hit.sum() == len(pairs) > 0
        np.testing.assert_array_equal(hit, whole)  # here even the same notes
        for j in np.flatnonzero(hit):
            assert any(x.pitch == est[j].pitch and abs(x.onset - est[j].onset) <= 0.05 + 1e-4 for x in ref)


def test_reliability_and_ece():
    conf = np.array([1.0, 1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25])
    ok = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    rows = reliability(conf, ok, bins=vote_bins(4))
    assert [(r["count"], r["confidence"], r["accuracy"]) for r in rows] == [(4, 0.25, 0.25), (4, 1.0, 0.75)]
    assert expected_calibration_error(conf, ok, bins=vote_bins(4)) == pytest.approx(0.5 * 0 + 0.5 * 0.25)
    assert expected_calibration_error(np.ones(10), np.ones(10, bool)) == 0.0
    assert np.isnan(expected_calibration_error([], []))
    np.testing.assert_allclose(vote_bins(4), [0, 0.375, 0.625, 0.875, 1.0])
    np.testing.assert_allclose(vote_bins(4, lowest=0), [0, 0.125, 0.375, 0.625, 0.875, 1.0])  # 0 votes: its own bin
    rng = np.random.default_rng(1)  # calibrated by construction: ECE near 0
    c = rng.uniform(0, 1, 20000)
    assert expected_calibration_error(c, rng.uniform(0, 1, c.size) < c) < 0.02
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        reliability([1.5], [True])
    with pytest.raises(ValueError, match="differ in length"):
        reliability([0.5, 0.5], [True])


def test_a_calibration_fit_on_over_confident_votes_removes_their_error():
    """Votes whose notes are right less often than their share (as the bundled model's are): the
    fitted calibration recovers the law that made them and brings the ECE near 0."""
    rng = np.random.default_rng(0)
    truth = Calibration(slope=1.2, intercept=-0.4)
    share = rng.integers(1, 5, 40000) / 4
    right = rng.uniform(size=share.size) < truth(share, 4)
    assert expected_calibration_error(share, right, vote_bins(4)) > 0.08
    fitted = fit_calibration(share, right, 4)
    assert fitted.slope == pytest.approx(1.2, abs=0.06) and fitted.intercept == pytest.approx(-0.4, abs=0.06)
    bins = vote_bins(4, fitted)
    assert np.all(np.diff(fitted(np.arange(1, 5) / 4, 4)) > 0) and np.all(np.diff(bins) > 0)
    assert len(reliability(fitted(share, 4), right, bins)) == 4  # still one bin per vote count
    assert expected_calibration_error(fitted(share, 4), right, bins) < 0.01
    zero = vote_bins(4, fitted, lowest=0)  # notes read from the mean: 0 of 4 samples may hold one
    assert len(zero) == 6 and np.all(np.diff(zero) > 0)
    assert zero[1] == pytest.approx((fitted(0, 4) + fitted(0.25, 4)) / 2)
    with pytest.raises(ValueError, match="lowest is 0 or 1"):
        vote_bins(4, lowest=2)
    assert Calibration.of([1.2, -0.4]) == truth and Calibration.of(None) is None
    assert 0 < truth(1.0, 4) < 1 and truth(1.0, 8) > truth(1.0, 4)  # all of 8 votes say more than all of 4


@pytest.mark.parametrize("bad", [[0.0, 1.0], [-1.0, 0.0], [float("nan"), 0.0], [1.0]])
def test_a_calibration_must_raise_confidence_with_votes(bad):
    with pytest.raises(ValueError, match="slope|slope, intercept"):
        Calibration.of(bad)


def test_a_calibration_needs_right_and_wrong_notes():
    with pytest.raises(ValueError, match="right and wrong"):
        fit_calibration([0.25, 0.5, 1.0], [True, True, True], 4)


def test_logistic_regression_finds_the_optimum_and_its_penalty_shrinks_the_weights():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5000, 3))
    y = rng.uniform(size=5000) < 1 / (1 + np.exp(-(x @ [2.0, -1.0, 0.0] + 0.5)))
    w, b = fit_logistic(x, y)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    np.testing.assert_allclose(np.append(x.T @ (p - y), (p - y).sum()) / len(y), 0, atol=1e-9)  # the gradient
    np.testing.assert_allclose(np.append(w, b), [2.0, -1.0, 0.0, 0.5], atol=0.12)
    shrunk, _ = fit_logistic(x, y, l2=0.1)
    assert np.linalg.norm(shrunk) < 0.7 * np.linalg.norm(w)
