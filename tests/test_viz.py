"""Plots and widgets of diffroll.viz (and the statistics of diffroll.experiments) on a tiny model."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffroll import viz  # noqa: E402
from diffroll.config import get_config  # noqa: E402
from diffroll.pipeline import Pipeline  # noqa: E402
from diffroll.diffusion import Diffusion  # noqa: E402
from diffroll.experiments import notes_in_spans, roll_statistics, to_markdown, write_table  # noqa: E402
from diffroll.model import DiffRoll  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = DiffRoll(cfg.model, len(cfg.roll.roll_channels)).eval()
    torch.nn.init.normal_(model.output_proj.weight, std=0.1)  # not all-zero output
    return Pipeline(model, cfg)


@pytest.fixture(scope="module")
def trajectory(tiny):
    mel = torch.rand(tiny.config.model.n_mels, 48)
    traj = viz.record_trajectory(tiny, mel, w=0.5, seed=0, label="test")
    traj.score([(0.1, 0.5, 60), (0.6, 1.0, 64)])
    return traj


def test_plot_history_with_and_without_validation(tmp_path):
    hist = [{"step": s, "loss": 1.0 / s} for s in range(1, 50)]
    fig = viz.plot_history(hist, tmp_path / "h.png")
    assert len(fig.axes) == 1 and (tmp_path / "h.png").stat().st_size > 0
    hist += [{"step": 25, "val_loss": 0.1, "val_note_f1": 0.4}, {"step": 49, "val_loss": 0.05, "val_note_f1": 0.6}]
    fig = viz.plot_history(hist)
    assert len(fig.axes) == 2
    assert list(fig.axes[1].lines[0].get_ydata()) == [0.4, 0.6]


def test_trajectory_records_every_step(tiny, trajectory):
    T = tiny.config.diffusion.T
    assert len(trajectory) == T and trajectory.t == list(range(T, 0, -1))
    assert trajectory.x_t[0].shape == (3 * 88, 48) and len(trajectory.f1) == T  # frame, onset, velocity
    assert np.all(np.diff(trajectory.alpha_bar) > 0)
    np.testing.assert_allclose(trajectory.x0, trajectory.x0_hat[-1].astype(np.float32), atol=1e-2)


def test_animation_gif(tmp_path, trajectory):
    from PIL import Image

    path = viz.animate_trajectory(trajectory, tmp_path / "t.gif", max_frames=5)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 5


def test_scrubber_redraws_on_slider_move(trajectory):
    scrub = viz.TrajectoryScrubber(trajectory)
    png0, label0 = scrub.image.value, scrub.label.value
    assert f"t = <b>{trajectory.t[0]}</b>" in label0 and "ᾱ_t" in label0 and "note F1" in label0
    scrub.slider.value = len(trajectory) - 1
    assert scrub.image.value != png0 and scrub.label.value != label0
    assert scrub.play.max == scrub.slider.max == len(trajectory) - 1


def test_mask_spans_and_inpainting_plot(tmp_path):
    mask = np.zeros(40, bool)
    mask[5:10] = mask[20:30] = True
    assert viz.mask_spans(mask) == [(5, 10), (20, 30)]
    assert viz.mask_spans(np.ones(3, bool)) == [(0, 3)] and viz.mask_spans(np.zeros(3, bool)) == []
    mel = np.random.rand(229, 40)
    mel[:, mask] = -1
    fig = viz.plot_inpainting(mel, mask, np.random.rand(88, 40), np.zeros((88, 40)), path=tmp_path / "i.png")
    red = [p for ax in fig.axes for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(red) == 2 * 3  # two spans outlined on each of the three panels


def test_schedule_forward_and_rolls(tmp_path):
    d = Diffusion()
    viz.plot_schedule(d, tmp_path / "s.png")
    roll = np.zeros((88, 64), np.float32)
    roll[40, 10:30] = 1
    fig = viz.plot_forward(roll, d, [0, 50, 200], path=tmp_path / "f.png")
    assert len([a for a in fig.axes if a.images]) == 3
    rgb = viz.compare_rolls(roll, np.roll(roll, 5, axis=1))
    assert rgb.shape == (88, 64, 3)
    np.testing.assert_allclose(rgb[40, 10], (0.2, 0.5, 1.0))  # missed
    np.testing.assert_allclose(rgb[40, 32], (1.0, 0.25, 0.2))  # extra
    np.testing.assert_allclose(rgb[40, 20], (1, 1, 1))  # hit


def test_roll_statistics_and_tables(tmp_path):
    roll = np.zeros((88, 100), np.float32)
    roll[39, 0:50] = roll[43, 0:25] = 1  # MIDI 60 for 1.6 s, MIDI 64 for 0.8 s
    s = roll_statistics([roll], fps=31.25)
    assert sorted(s["pitches"].tolist()) == [60, 64]
    np.testing.assert_allclose(sorted(s["lengths"]), [0.8, 1.6])
    assert s["polyphony"].max() == 2 and s["mean_polyphony"] == pytest.approx(0.75)
    viz.plot_roll_statistics({"a": s, "b": s}, tmp_path / "st.png")
    assert notes_in_spans([(0.5, 1, 60), (2, 3, 61)], [(0, 1)]) == [(0.5, 1, 60)]
    assert notes_in_spans([(0.5, 1, 60), (2, 3, 61)], [(0, 1)], inside=False) == [(2, 3, 61)]
    csv_path, md_path = write_table([{"x": 1, "f1": 0.5}], tmp_path / "t")
    assert csv_path.read_text().splitlines()[0] == "x,f1"
    assert to_markdown([{"x": 1, "f1": 0.5}]).splitlines()[-1] == "| 1 | 0.500 |"
