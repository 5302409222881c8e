"""What the notebooks show: the plots and widgets of diffroll.lab.viz (each test checks what a plot
draws: its panels, the data on its lines and images, its titles, the file written), the
statistics they plot (diffroll.corpus.segments), and the notebook glue (diffroll.lab.experiments)."""
import matplotlib

matplotlib.use("Agg")
import csv  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from fixtures_data import make_midi, maestro_fixture  # noqa: E402
from toy_data import toy_roll_only, toy_segments  # noqa: E402

from diffroll.corpus import segments as data  # noqa: E402

from diffroll.lab import trajectory as tr  # noqa: E402
from diffroll.lab import viz, widget  # noqa: E402
from diffroll.lab import experiments as ex  # noqa: E402
from diffroll.core.config import NOTE_STATE, get_config  # noqa: E402
from diffroll.core.diffusion import Diffusion  # noqa: E402
from diffroll.transcription.pipeline import Pipeline, new_model  # noqa: E402
from diffroll.core.roll import Note, notes_to_roll  # noqa: E402

FPS = 31.25
NOTES = [Note(0.32, 0.96, 60, 100), Note(0.64, 1.6, 64, 50)]  # frames 10-30 and 20-50


def note_state_roll(frames: int = 64) -> np.ndarray:
    return notes_to_roll(NOTES, FPS, n_frames=frames, channels=NOTE_STATE)


@pytest.fixture(scope="module")
def tiny():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = new_model(cfg).eval()
    torch.nn.init.normal_(model.output_proj.weight, std=0.1)  # not all-zero output
    return Pipeline(model, cfg)


@pytest.fixture(scope="module")
def trajectory(tiny):
    mel = torch.rand(tiny.config.model.n_mels, 48)
    traj = tr.record_trajectory(tiny, mel, tiny.sampling.replace(w=0.5, sampler="ddpm", steps=None), seed=0, label="test")
    traj.score([Note(0.1, 0.5, 60), Note(0.6, 1.0, 64)])
    return traj


def image_data(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


# --- training history ---------------------------------------------------------------------------

def test_plot_history_draws_the_losses_and_f1(tmp_path):
    hist = [{"step": s, "loss": 1.0 / s} for s in range(1, 50)]
    fig = viz.plot_history(hist, tmp_path / "h.png")
    assert len(fig.axes) == 1 and (tmp_path / "h.png").stat().st_size > 0
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == list(range(1, 50)) and np.allclose(line.get_ydata(), [1 / s for s in range(1, 50)])
    assert fig.axes[0].get_yscale() == "log"
    hist += [{"step": 25, "val_loss": 0.1, "val_note_f1": 0.4}, {"step": 49, "val_loss": 0.05, "val_note_f1": 0.6}]
    fig = viz.plot_history(hist)
    assert len(fig.axes) == 2
    assert list(fig.axes[0].lines[1].get_ydata()) == [0.1, 0.05]  # validation loss
    assert list(fig.axes[1].lines[0].get_ydata()) == [0.4, 0.6] and fig.axes[1].get_ylim() == (0, 1)


# --- rolls --------------------------------------------------------------------------------------

def test_roll_channels_channel_and_onsets():
    roll = note_state_roll()
    assert viz.roll_channels(roll) == NOTE_STATE and viz.roll_channels(roll[:88]) == ("frame",)
    with pytest.raises(ValueError, match="channels"):
        viz.roll_channels(np.zeros((176, 8)))
    with pytest.raises(ValueError, match="cannot hold"):
        viz.roll_channels(roll, ("frame",))
    np.testing.assert_array_equal(viz.channel(roll, "velocity"), roll[176:])
    np.testing.assert_allclose(viz.onset_points(roll, FPS), [[10 / FPS, 60], [20 / FPS, 64]])
    assert viz.onset_points(roll[:88], FPS).shape == (0, 2)


def test_show_roll_draws_the_frame_channel_and_ticks_onsets():
    roll = note_state_roll()
    _, ax = matplotlib.pyplot.subplots()
    viz.show_roll(roll, ax, FPS, title="x")
    np.testing.assert_array_equal(image_data(ax), roll[:88])
    np.testing.assert_allclose(ax.onset_marks.get_offsets(), viz.onset_points(roll, FPS))
    assert ax.get_title() == "x" and ax.images[0].get_extent() == [0, 64 / FPS, 20.5, 108.5]
    _, ax = matplotlib.pyplot.subplots()
    viz.show_roll(roll[:88], ax, FPS)  # the paper's frame roll: no onsets to tick
    assert not ax.collections and not hasattr(ax, "onset_marks")


def test_plot_rolls_and_channels(tmp_path):
    roll = note_state_roll()
    fig = viz.plot_rolls([roll, 2 * roll, roll], ["a", "b", "c"], FPS, tmp_path / "r.png", ncols=2)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["a", "b", "c"]
    assert not fig.axes[3].axison  # the unused fourth cell is switched off
    np.testing.assert_array_equal(image_data(fig.axes[1]), 2 * roll[:88])
    fig = viz.plot_channels(roll, FPS, path=tmp_path / "c.png", title="piece")
    assert [ax.get_title() for ax in fig.axes] == ["frame channel", "onset channel", "velocity channel"]
    for k, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(image_data(ax), roll[88 * k:88 * (k + 1)])
    assert fig._suptitle.get_text() == "piece" and (tmp_path / "c.png").stat().st_size > 0


def test_plot_piece_shades_the_pedal(tmp_path):
    roll, mel = note_state_roll(), np.random.rand(229, 64)
    fig = viz.plot_piece(mel, roll, FPS, pedal=[(0.2, 0.9), (1.5, 9.0), (5.0, 6.0)], path=tmp_path / "p.png")
    mel_ax, roll_ax, pedal_ax = fig.axes
    np.testing.assert_allclose(image_data(mel_ax), mel)
    np.testing.assert_array_equal(image_data(roll_ax), roll[:88])
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in pedal_ax.patches]
    np.testing.assert_allclose(spans, [(0.2, 0.9), (1.5, 64 / FPS)])  # the span past the end is cut, the next dropped
    assert len(roll_ax.patches) == 2 and roll_ax.get_legend() is not None
    assert (tmp_path / "p.png").stat().st_size > 0


# --- the schedule and the forward process ---------------------------------------------------------

def test_schedule_plot_shows_alpha_and_alpha_bar(tmp_path):
    d = Diffusion()
    fig = viz.plot_schedule(d, tmp_path / "s.png")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), d.alphas.numpy())
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), d.alphas_cumprod.numpy())
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata() ** 2, d.alphas_cumprod.numpy(), rtol=1e-6)
    assert fig.axes[1].get_title() == f"ᾱ_T = {d.alphas_cumprod[-1]:.4f}" and (tmp_path / "s.png").is_file()


def test_forward_plot_shows_x_t_of_eq_1(tmp_path):
    d, roll = Diffusion(), note_state_roll()
    fig = viz.plot_forward(roll, d, [0, 50, 200], seed=3, path=tmp_path / "f.png")
    axes = [a for a in fig.axes if a.images]
    assert len(axes) == 3 and axes[1].get_title().startswith("t = 50")
    x0 = torch.from_numpy(roll)[None]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(image_data(axes[0]), roll[:88])  # t = 0: the roll itself
    np.testing.assert_allclose(image_data(axes[2]), d.q_sample(x0, torch.tensor([200]), eps)[0, :88].numpy(), atol=1e-6)
    assert not axes[2].collections  # noisy rolls: no onset ticks


# --- trajectories -------------------------------------------------------------------------------

def test_trajectory_records_every_step(tiny, trajectory):
    T = tiny.config.diffusion.T
    assert len(trajectory) == T and trajectory.t == list(range(T, 0, -1))
    assert trajectory.x_t[0].shape == (3 * 88, 48) and len(trajectory.f1) == len(trajectory.f1_xt) == T
    assert trajectory.channels == NOTE_STATE
    assert np.all(np.diff(trajectory.alpha_bar) > 0)
    np.testing.assert_allclose(trajectory.x0, trajectory.x0_hat[-1].astype(np.float32), atol=1e-2)
    change = trajectory.x0_change()
    assert change.shape == (T,) and change[-1] < 1e-2 < change[0]


def test_trajectory_scores_read_notes_with_the_pipeline(tiny):
    roll = notes_to_roll(NOTES, FPS, n_frames=64, channels=NOTE_STATE)
    traj = tr.Trajectory(x_t=[np.zeros_like(roll), roll], x0_hat=[roll, roll], t=[2, 1], alpha_bar=[0.5, 1.0],
                          channels=NOTE_STATE, decode=tiny.decode)
    assert traj.score(NOTES) == [1.0, 1.0] and traj.f1_xt == [0.0, 1.0]


def test_trajectory_figures(tmp_path, trajectory):
    fig = tr.plot_trajectory_curves([trajectory], tmp_path / "c.png")
    f1_ax, change_ax, _ = fig.axes
    assert list(f1_ax.lines[0].get_ydata()) == trajectory.f1 and list(f1_ax.lines[1].get_ydata()) == trajectory.f1_xt
    np.testing.assert_allclose(change_ax.lines[0].get_ydata(), trajectory.x0_change())
    fig = tr.plot_trajectory_steps(trajectory, 4, tmp_path / "s.png")
    idx = tr.trajectory_frames(trajectory, 4)
    assert idx[0] == 0 and idx[-1] == len(trajectory) - 1 and len(fig.axes) == 4
    np.testing.assert_allclose(image_data(fig.axes[-1]), np.clip(trajectory.x0_hat[-1][:88].astype(np.float32), 0, 1))
    assert fig.axes[-1].get_title().startswith(f"t = {trajectory.t[-1]}")


def test_animation_gif(tmp_path, trajectory):
    from PIL import Image

    path = tr.animate_trajectory(trajectory, tmp_path / "t.gif", max_frames=5)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 5


def test_scrubber_redraws_on_slider_move(trajectory):
    scrub = widget.TrajectoryScrubber(trajectory)
    png0, label0 = scrub.image.value, scrub.label.value
    assert f"t = <b>{trajectory.t[0]}</b>" in label0 and "ᾱ_t" in label0 and "note F1" in label0
    scrub.slider.value = len(trajectory) - 1
    assert scrub.image.value != png0 and scrub.label.value != label0
    assert scrub.play.max == scrub.slider.max == len(trajectory) - 1
    last = trajectory.x0_hat[-1]
    np.testing.assert_array_equal(scrub._figure.im_x0.get_array(), viz.channel(last, "frame", NOTE_STATE))
    np.testing.assert_allclose(scrub._figure.onsets.get_offsets(), viz.onset_points(last, FPS, NOTE_STATE))


# --- inpainting ---------------------------------------------------------------------------------

def test_mask_spans_and_inpainting_plot(tmp_path):
    mask = np.zeros(40, bool)
    mask[5:10] = mask[20:30] = True
    assert viz.mask_spans(mask) == [(5, 10), (20, 30)]
    assert viz.mask_spans(np.ones(3, bool)) == [(0, 3)] and viz.mask_spans(np.zeros(3, bool)) == []
    mel = np.random.rand(229, 40)
    mel[:, mask] = -1
    x0 = np.random.rand(264, 40) * 1.4 - 0.2
    fig = viz.plot_inpainting(mel, mask, x0, np.zeros((264, 40)), path=tmp_path / "i.png")
    red = [p for ax in fig.axes for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(red) == 2 * 3  # two spans outlined on each of the three panels
    assert np.ma.getmaskarray(fig.axes[0].images[0].get_array())[:, mask].all()  # masked frames show as blank
    np.testing.assert_allclose(image_data(fig.axes[1]), np.clip(x0, 0, 1)[:88])
    assert (tmp_path / "i.png").stat().st_size > 0


# --- statistics and tables ----------------------------------------------------------------------

def test_note_statistics_and_their_plot(tmp_path):
    s = data.note_statistics([[Note(0.0, 1.6, 60), Note(0.0, 0.8, 64)]], fps=FPS, seconds=[3.2])
    assert sorted(s["pitches"].tolist()) == [60, 64]
    np.testing.assert_allclose(sorted(s["lengths"]), [0.8, 1.6])
    assert len(s["polyphony"]) == 100 and s["polyphony"].max() == 2 and s["mean_polyphony"] == pytest.approx(0.75)
    assert s["notes_per_second"] == pytest.approx(2 / 3.2)
    fig = viz.plot_note_statistics({"a": s, "b": s}, tmp_path / "st.png")
    poly_ax, pitch_ax, _ = fig.axes
    heights = [p.get_height() for p in pitch_ax.patches]
    assert len(heights) == 2 * 44 and sum(h > 0 for h in heights) == 2 * 2  # bins of 2 keys: 60 and 64, twice
    assert [t.get_text() for t in poly_ax.get_legend().get_texts()] == ["a (mean 0.75)", "b (mean 0.75)"]


def test_plot_stacked_bars_sums_and_stacks():
    rows = [{"source": "score", "split": "train", "hours": 1.0}, {"source": "score", "split": "test", "hours": 0.5},
            {"source": "study", "split": "train", "hours": 2.0}, {"source": "score", "split": "train", "hours": 0.25}]
    fig = viz.plot_stacked_bars(rows, x="source", stack="split")
    train, test = fig.axes[0].containers
    assert [b.get_height() for b in train] == [1.25, 2.0] and [b.get_height() for b in test] == [0.5, 0.0]
    assert [b.get_y() for b in test] == [1.25, 2.0]  # stacked on top of train


def test_score_plots(tmp_path):
    fig = viz.plot_f1_vs_w({"m": {0.5: 0.8, 0.0: 0.7}}, tmp_path / "w.png", baselines={"disc": 0.6})
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.5] and list(ax.lines[0].get_ydata()) == [0.7, 0.8]
    assert list(ax.lines[1].get_ydata()) == [0.6, 0.6]
    fig = viz.plot_bars({"a": 0.3, "b": 0.5}, tmp_path / "b.png", reference={"a": 0.4})
    ours, paper = fig.axes[0].containers
    assert [b.get_height() for b in ours] == [0.3, 0.5] and paper[0].get_height() == 0.4


def test_pedal_statistics(tmp_path):
    notes = [(0.0, 1.0, 60), (5.0, 10.0, 62)]
    pedal = [(1.0, 127), (3.0, 0), (4.0, 100), (6.0, 0), (8.0, 127)]  # the last press is never released
    make_midi(notes, pedal).write(str(tmp_path / "a.mid"))
    make_midi(notes).write(str(tmp_path / "b.mid"))
    assert data.pedal_spans(tmp_path / "a.mid") == [(1.0, 3.0), (4.0, 6.0), (8.0, 10.0)]
    assert data.pedal_share(tmp_path / "a.mid") == pytest.approx(0.6)
    (row,) = data.pedal_statistics({"x": [tmp_path / "a.mid", tmp_path / "b.mid"]})
    assert row["performances"] == 2 and row["pedalled share"] == 0.5
    assert row["pedal-down share"] == pytest.approx(6 / 20)  # 6 s of 2 × 10 s
    assert row["presses per minute"] == pytest.approx(3 / (20 / 60))


def test_manifest_hours_and_corpus_midis(tmp_path):
    rows = [("a", "train", "TimGM6mb", "score", "seen", 3600), ("a", "train", "csound", "score", "seen", 1800),
            ("b", "test", "FluidR3_GM", "study", "unseen", 900)]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["piece", "split", "soundfont", "audio", "midi", "seconds", "source",
                                               "base", "copy", "program", "detune", "timbre"])
        writer.writeheader()
        for piece, split, font, source, timbre, seconds in rows:
            writer.writerow({"piece": piece, "split": split, "soundfont": font, "audio": f"audio/{font}/{piece}.flac",
                             "midi": f"midi/{piece}.mid", "seconds": seconds, "source": source, "base": piece,
                             "copy": 0, "program": 0, "detune": 0, "timbre": timbre})
    assert data.manifest_hours(tmp_path, ("split", "source")) == [
        {"split": "test", "source": "study", "renders": 1, "hours": 0.25},
        {"split": "train", "source": "score", "renders": 2, "hours": 1.5}]
    assert data.corpus_midis(tmp_path) == {"score": [tmp_path / "midi/a.mid"], "study": [tmp_path / "midi/b.mid"]}
    assert data.corpus_midis(tmp_path, splits=("train",)) == {"score": [tmp_path / "midi/a.mid"]}


# --- pieces and notebook glue -------------------------------------------------------------------

def test_load_pieces_cuts_wave_and_reference(tmp_path):
    root = maestro_fixture(tmp_path)
    cfg = get_config("smoke")
    (whole,) = data.load_pieces(root, "train", n=1, cfg=cfg, dataset="maestro")
    (cut,) = data.load_pieces(root, "train", n=1, max_seconds=0.75, cfg=cfg, dataset="maestro")
    assert isinstance(cut, data.LoadedPiece) and cut.name == whole.name and cut.group == "2004"
    assert len(cut.wave) == 12000 and len(whole.wave) > 12000
    assert [n[:3] for n in cut.notes] == [(0.0, 0.5, 60), (0.5, 0.75, 64)]  # the second note clipped, not dropped
    assert [n[:3] for n in whole.notes[:2]] == [(0.0, 0.5, 60), (0.5, 1.0, 64)]


def test_fixed_loss_and_train_run_reuse(tmp_path):
    cfg = get_config("smoke", max_steps=4, log_every=2, validate_every=0, checkpoint_every=100)
    paired, rolls = toy_segments(8, 32), toy_roll_only(8, 32)
    run = ex.train_run(cfg, tmp_path, "cell", paired=paired)
    assert run.checkpoint.parent.name == f"cell-{ex.config_key(cfg)}" and run.history[-1]["step"] == 4
    before, after = ex.loss_before_after(run, paired)
    assert before == pytest.approx(ex.fixed_loss(Pipeline.from_config(cfg), paired))  # x̂0 = 0 for any init
    assert ex.fixed_loss(run.pipeline, paired) == after  # fixed draws: the same number every time
    assert ex.fixed_loss(run.pipeline, rolls, p=1.0) > 0  # roll-only sets get c_mel = -1
    again = ex.train_run(cfg, tmp_path, "cell", paired=paired)  # reused, not retrained
    assert again.history == run.history
    assert ex.config_key(cfg.override(p=0.3)) != ex.config_key(cfg)


def test_config_key_hashes_settings_that_differ_from_their_defaults(monkeypatch):
    """A setting added later at its default keeps every run folder's key; set to another value, it changes it."""
    cfg = get_config("cpu")
    key = ex.config_key(cfg)
    assert key != ex.config_key(get_config("smoke")) and key != ex.config_key(cfg.override(extend_T=100))
    # a whole number for a float setting names the same run as the float; for an int setting, itself
    assert ex.config_key(cfg.override(max_minutes=95)) == ex.config_key(cfg.override(max_minutes=95.0))
    assert ex.config_key(cfg.override(max_minutes=95)) != ex.config_key(cfg.override(max_minutes=96.0))
    assert ex.config_key(cfg.override(max_steps=7)) != ex.config_key(cfg.override(max_steps=8))
    to_dict = ex.Config.to_dict

    def with_new_setting(self):
        d = to_dict(self)
        d["diffusion"]["brand_new"] = getattr(self, "_brand_new", 0)
        return d

    monkeypatch.setattr(ex.Config, "to_dict", with_new_setting)
    assert ex.config_key(cfg) == key
    object.__setattr__(cfg, "_brand_new", 1)
    assert ex.config_key(cfg) != key


def test_train_for_minutes_keeps_its_budget_and_snapshots_make_a_curve(tmp_path):
    """A run trains until its wall-clock budget (or max_steps), resumes a run that stopped short, is
    reused once it had its budget; its snapshots are (step, training seconds, file) in step order."""
    cfg = get_config("smoke", max_steps=6, log_every=2, validate_every=0, checkpoint_every=2, snapshot_every=2)
    paired = toy_segments(8, 32)
    run = ex.train_for_minutes(cfg, tmp_path, "cand", 5.0, paired=paired)  # max_steps ends it first
    assert run.history[-1]["step"] == 6
    points = ex.snapshots(run)
    assert [s for s, _, _ in points] == [2, 4, 6] and all(p.is_file() for _, _, p in points)
    assert [t for _, t, _ in points] == sorted(t for _, t, _ in points) and points[0][1] > 0
    again = ex.train_for_minutes(cfg, tmp_path, "cand", 5.0, paired=paired)  # reused: no more steps
    assert again.history[-1]["step"] == 6
    short = ex.train_for_minutes(cfg.override(max_steps=10**6), tmp_path, "budget", 0.02, paired=paired)
    assert 1 <= short.history[-1]["step"] < 10**6  # the budget (1.2 s) ends it
    assert 0.5 < short.history[-1]["wall_seconds"] < 60
    fig = viz.plot_learning_curves({"a": [(m / 60, f1) for _, m, _ in points for f1 in [0.1]]},
                                   tmp_path / "curves.png", title="t")
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [0.1, 0.1, 0.1] and (tmp_path / "curves.png").is_file()


def test_budget_configs_give_a_candidate_trained_alone_the_notebooks_run_folder():
    """Notebook 12's candidates share one budget (minutes, step cap, snapshots, seed, no in-training
    validation) on their own architecture; a candidate configured alone (benchmarks/architecture_budget.py)
    gets the config key, hence the run folder, the notebook reuses."""
    candidates = ex.architecture_candidates("smoke")
    configs = ex.budget_configs("smoke", candidates, 0.5, 30, 10, seed=3)
    assert list(configs) == list(candidates) and len({ex.config_key(c) for c in configs.values()}) == 4
    for label, cfg in configs.items():
        t = cfg.train
        assert (t.max_minutes, t.max_steps, t.snapshot_every, t.checkpoint_every, t.log_every, t.validate_every,
                t.seed) == (0.5, 30, 10, 10, 10, 0, 3)
        assert (cfg.model.architecture, cfg.audio.frontend) == (
            "keyshared" if label.startswith("key-shared") else "diffwave", "hcqt" if "HCQT" in label else "mel")
        alone = ex.budget_configs("smoke", {label: candidates[label]}, 0.5, 30, 10, seed=3)[label]
        assert ex.config_key(alone) == ex.config_key(cfg)
        # papermill passes `-p minutes 95` as an int, the script 95.0: the same run folder
        assert ex.config_key(ex.budget_configs("smoke", {label: candidates[label]}, 1, 30, 10, seed=3)[label]) \
            == ex.config_key(ex.budget_configs("smoke", {label: candidates[label]}, 1.0, 30, 10, seed=3)[label])
        assert ex.config_key(ex.budget_configs("smoke", {label: candidates[label]}, 0.6, 30, 10, seed=3)[label]) \
            != ex.config_key(cfg)  # another budget, another run
    defaults = ex.budget_configs("smoke", candidates, 0.5)  # the scale's step cap and snapshots, as the notebook's None
    assert [ex.config_key(c) for c in defaults.values()] == [
        ex.config_key(c) for c in ex.budget_configs("smoke", candidates, 0.5, 30, 10).values()]
    assert ex.run_name("DiffWave on the mel (the bundled layout)") == "DiffWave-on-the-mel"
    # the DiffWave net on the HCQT differs from the key-shared nets by the network alone: the same
    # front-end, hence the same cached training segments (built once for all three)
    hcqt = [c for label, c in configs.items() if "HCQT" in label]
    assert len(hcqt) == 3 and len({repr(data.audio_settings(c.audio)) for c in hcqt}) == 1
    assert {c.model.n_mels for c in hcqt} == {hcqt[0].audio.condition_rows}


def test_with_thresholds_reads_notes_at_a_sweep_rows_thresholds():
    """experiments.with_thresholds: the same network, the row's onset and frame thresholds in its config."""
    cfg = get_config("smoke", roll_channels=list(NOTE_STATE))
    pipe = Pipeline(new_model(cfg), cfg)
    tuned = ex.with_thresholds(pipe, {"onset_threshold": 0.05, "frame_threshold": 0.2, "f1": 0.5})
    assert tuned.model is pipe.model
    assert (tuned.config.roll.onset_threshold, tuned.config.diffusion.threshold) == (0.05, 0.2)
    assert (pipe.config.roll.onset_threshold, pipe.config.diffusion.threshold) != (0.05, 0.2)


def test_tables_and_spans(tmp_path):
    assert ex.notes_in_spans([(0.5, 1, 60), (2, 3, 61)], [(0, 1)]) == [(0.5, 1, 60)]
    assert ex.notes_in_spans([(0.5, 1, 60), (2, 3, 61)], [(0, 1)], inside=False) == [(2, 3, 61)]
    csv_path, md_path = ex.write_table([{"x": 1, "f1": 0.5}, {"x": 2, "w": None}], tmp_path / "t")
    assert csv_path.read_text().splitlines() == ["x,f1,w", "1,0.5,", "2,,"]
    assert md_path.read_text().splitlines()[-1] == "| 2 |  |  |"
    assert ex.to_markdown([{"x": 1, "f1": 0.5}]).splitlines()[-1] == "| 1 | 0.500 |"
    cfg = get_config("smoke")
    assert [ex.timbre_of(g, cfg) for g in ("TimGM6mb", "FluidR3_GM", "csound")] == ["seen", "unseen", "unseen"]


def test_split_example_draws_each_models_notes_for_the_held_note(tmp_path):
    from diffroll.evaluation.metrics import split_reference_notes
    from diffroll.core.roll import Note, notes_to_roll

    ref = [Note(0.5, 2.5, 60, 80)]
    split = [Note(0.5, 1.2, 60, 80), Note(1.4, 2.5, 60, 80),  # a dip read as a re-strike
             Note(2.8, 3.0, 60, 80)]  # the next note of the key, after the held one: drawn, not counted
    assert split_reference_notes(ref, split) == ref and split_reference_notes(ref, ref) == []
    fr = notes_to_roll(split, n_frames=100)
    st = notes_to_roll(ref, n_frames=100, channels=("frame", "onset", "velocity"))
    fig = viz.plot_split_example(ref, {"frame": (fr, split, ["frame"]), "state": (st, ref, ["frame", "onset", "velocity"])},
                                 ref[0], path=tmp_path / "split.png")
    assert (tmp_path / "split.png").stat().st_size > 0
    left, right = fig.axes[:2]
    assert "2 notes" in left.get_title() and "1 note " in right.get_title()
    assert len([ln for ln in left.lines if ln.get_color() == "red"]) == 3


def test_load_pieces_spread_picks_pieces_across_the_split(tmp_path, monkeypatch):
    import dataclasses

    root = maestro_fixture(tmp_path)
    cfg = get_config("smoke")
    (piece,) = data.list_pieces(root, dataset="maestro", split="train")[:1]
    split = [dataclasses.replace(piece, name=f"p{i}") for i in range(6)]
    monkeypatch.setattr(data, "list_pieces", lambda *a, **k: split)
    monkeypatch.setattr(data, "load_piece", lambda p, cfg: (np.zeros(16000, np.float32), []))
    spread = data.load_pieces(root, "train", n=3, cfg=cfg, spread=True)
    first = data.load_pieces(root, "train", n=3, cfg=cfg)
    assert [p.name for p in spread] == ["p0", "p2", "p4"] and [p.name for p in first] == ["p0", "p1", "p2"]
    assert len(data.load_pieces(root, "train", n=10, cfg=cfg, spread=True)) == 6


def test_log_trend_recovers_a_log_linear_curve_and_its_crossings():
    """A curve F1 = a + b ln m is fitted exactly from its later half; minutes to a target and the
    crossing of two trends are where the formulas put them; a flat curve never gets there."""
    from diffroll.lab.curves import crossing_minutes, fit_log_trend

    slow = [(m, 0.30 + 0.02 * np.log(m)) for m in (1, 2, 4, 8, 16, 32, 64)]
    fast = [(m, 0.10 + 0.05 * np.log(m) + (0.3 if m < 4 else 0.0)) for m in (1, 2, 4, 8, 16, 32, 64)]
    s, f = fit_log_trend(slow), fit_log_trend(fast)  # the bump before minute 4 is left out (from 32 on)
    assert (s.a, s.b, f.a, f.b) == pytest.approx((0.30, 0.02, 0.10, 0.05))
    assert (s.start, s.end, s.points) == (32, 64, 2)
    assert fit_log_trend(fast, from_fraction=0.01).b != pytest.approx(0.05)  # from minute 1 the bump counts
    assert s.minutes_to(0.40) == pytest.approx(np.exp(5.0)) and s.minutes_to(0.1) == 64
    cross = crossing_minutes(s, f)
    assert cross == pytest.approx(np.exp(0.2 / 0.03)) and s.at(cross) == pytest.approx(f.at(cross))
    assert crossing_minutes(f, s) == 64  # already above at the end
    flat = fit_log_trend([(m, 0.2) for m in (10, 20, 40)])
    assert flat.minutes_to(0.3) == np.inf and crossing_minutes(s, flat) == np.inf
    with pytest.raises(ValueError, match="need 2 or more"):
        fit_log_trend([(1, 0.1), (64, 0.2)])
