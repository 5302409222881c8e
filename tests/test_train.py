"""The trainer: loss falls, checkpoints survive a kill, resuming continues the same run."""
import json

import numpy as np
import pytest
import torch

from diffroll.core.checkpoint import CheckpointError, export_weights, load_checkpoint, trained_steps

from diffroll.transcription.pipeline import load_model
from diffroll.core.config import NOTE_STATE, get_config
from diffroll.training.steps import random_crop
from diffroll.training.trainer import Trainer
from toy_data import toy_roll_only, toy_segments


def smoke_cfg(**kw):
    return get_config("smoke", checkpoint_every=10, validate_every=0, log_every=1, **kw)


def test_smoke_training_loss_falls(tmp_path):
    cfg = smoke_cfg(max_steps=200)
    trainer = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "run", progress=False)
    hist = trainer.fit()
    losses = [r["loss"] for r in hist if "loss" in r]
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10])
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    rows = json.loads((tmp_path / "run" / "history.json").read_text())
    assert rows[-1]["step"] == 200
    assert (tmp_path / "run" / "log.csv").read_text().startswith("step,")


def test_resume_continues_the_same_run(tmp_path):
    cfg = smoke_cfg(max_steps=20, ema_decay=0.9)
    straight = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "a", progress=False).fit()
    first = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "b", progress=False)
    first.fit(max_steps=10)
    del first  # "killed" after its step-10 checkpoint
    resumed = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "b", progress=False)
    assert resumed.step == 10
    hist = resumed.fit()
    a = [r["loss"] for r in straight if "loss" in r]
    b = [r["loss"] for r in hist if "loss" in r]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_kill_during_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = smoke_cfg(max_steps=10)
    trainer = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path, progress=False)
    trainer.fit()
    good = load_checkpoint(tmp_path / "checkpoint.pt")["step"]

    def dying_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dying_save)
    trainer.step += 5
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == good == 10


def test_bad_checkpoints_say_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a DiffRoll checkpoint"):
        load_model(tmp_path / "other.pt")
    trainer = Trainer(smoke_cfg(max_steps=1), paired=toy_segments(), run_dir=tmp_path / "r", progress=False)
    trainer.fit()
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    state["config"]["model"]["channels"] = 8  # weights no longer match
    torch.save(state, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="different model"):
        Trainer(smoke_cfg(channels=8), paired=toy_segments(), run_dir=tmp_path / "r", progress=False)


def test_load_pipeline_and_export(tmp_path):
    trainer = Trainer(smoke_cfg(max_steps=3, ema_decay=0.5), paired=toy_segments(), run_dir=tmp_path,
                      progress=False)
    trainer.fit()
    small = export_weights(tmp_path / "checkpoint.pt", tmp_path / "bundle.pt")
    assert "optimizer" not in load_checkpoint(small)
    pipe = load_model(small)
    assert not pipe.model.training and pipe.config.scale == "smoke"
    for a, b in zip(pipe.model.state_dict().values(), trainer.ema.state_dict().values()):
        assert torch.equal(a, b)
    half = export_weights(tmp_path / "checkpoint.pt", tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.7 * small.stat().st_size  # float16 weights (the bundled model's format)
    halved = load_model(half)
    for a, b in zip(halved.model.state_dict().values(), trainer.ema.state_dict().values()):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    tuned = export_weights(tmp_path / "checkpoint.pt", tmp_path / "tuned.pt",
                           settings={"roll": {"onset_threshold": 0.3}, "diffusion": {"w": 0.25}})
    cfg = load_model(tuned).config
    assert (cfg.roll.onset_threshold, cfg.diffusion.w) == (0.3, 0.25)
    assert load_model(small).config.roll.onset_threshold != 0.3
    with pytest.raises(CheckpointError, match="no setting"):
        export_weights(tmp_path / "checkpoint.pt", tmp_path / "bad.pt", settings={"roll": {"onset_treshold": 0.3}})
    assert not (tmp_path / "bad.pt").exists()


def test_discriminative_and_mixed_modes_train(tmp_path):
    # the baseline of §4.1 fits a fixed batch (x_t = 0, t = 1: only c_mel carries information)
    cfg = smoke_cfg(max_steps=300, mode="discriminative", batch_size=4, crop_frames=None, channels=32, lr=2e-3)
    hist = Trainer(cfg, paired=toy_segments(n=4), progress=False).fit()
    losses = [r["loss"] for r in hist]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    mixed = Trainer(smoke_cfg(max_steps=4), paired=toy_segments(), unpaired=toy_roll_only(), progress=False)
    sources = []
    for _ in range(4):
        sources.append(mixed._source(mixed.step))
        mixed.train_step()
    assert sources == [("paired", 0.0, 0), ("unpaired", 1.0, 0), ("paired", 0.0, 1), ("unpaired", 1.0, 1)]
    pre = Trainer(smoke_cfg(max_steps=2), unpaired=toy_roll_only(), progress=False)
    assert pre._source(0) == ("unpaired", 1.0, 0)
    pre.fit()


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    a = Trainer(smoke_cfg(max_steps=5, ema_decay=None), paired=toy_segments(), run_dir=tmp_path / "a",
                progress=False)
    a.fit()
    b = Trainer(smoke_cfg(max_steps=5, ema_decay=None), paired=toy_segments(), progress=False,
                init_from=tmp_path / "a" / "checkpoint.pt")
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)
    b.fit()
    b.save(tmp_path / "b.pt")  # the steps of the run it started from are kept
    assert trained_steps(load_checkpoint(tmp_path / "b.pt")) == "5 + 5"
    assert trained_steps(load_checkpoint(tmp_path / "a" / "checkpoint.pt")) == "5"


def test_random_crop_is_aligned():
    mel = torch.arange(2 * 3 * 10).float().view(2, 3, 10)
    roll = mel[:, :2].clone()
    m, r = random_crop([mel, roll], 4, torch.Generator().manual_seed(0))
    assert m.shape == (2, 3, 4) and torch.equal(m[:, :2], r)


def test_ema_warms_up_so_short_runs_are_not_the_initial_weights():
    trainer = Trainer(smoke_cfg(max_steps=20, ema_decay=0.999), paired=toy_segments(), progress=False)
    trainer.fit()
    ema, live = trainer.ema.output_proj.weight, trainer.model.output_proj.weight  # both start at zero
    assert ema.norm() > 0.5 * live.norm() > 0


def test_channel_weights_become_row_weights_and_are_checked():
    from diffroll.training.steps import row_weights

    cfg = smoke_cfg(channel_weights=[1.0, 4.0, 2.0])
    w = row_weights(cfg)
    assert w.shape == (264,) and w[0] == 1 and w[88] == 4 and w[263] == 2
    assert row_weights(smoke_cfg()) is None
    with pytest.raises(ValueError, match="one non-negative weight per roll channel"):
        row_weights(smoke_cfg(channel_weights=[1.0, 2.0]))
    Trainer(cfg, paired=toy_segments(), progress=False).fit(max_steps=2)  # trains with them


def test_cosine_schedule_decays_to_lr_final_and_resumes_on_it(tmp_path):
    from diffroll.training.steps import learning_rate

    cfg = smoke_cfg(max_steps=20, lr_schedule="cosine", lr=1e-3, lr_final=1e-5, ema_decay=0.9)
    assert learning_rate(cfg.train, 0) == pytest.approx(1e-3)
    assert learning_rate(cfg.train, 10) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cfg.train, 20) == learning_rate(cfg.train, 50) == pytest.approx(1e-5)
    late = smoke_cfg(max_steps=20, lr_schedule="cosine", lr=1e-3, lr_final=0.0, lr_decay_start=10).train
    assert learning_rate(late, 0) == learning_rate(late, 10) == pytest.approx(1e-3)
    assert learning_rate(late, 15) == pytest.approx(5e-4) and learning_rate(late, 20) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_decay_start 20 must be in"):
        learning_rate(smoke_cfg(max_steps=20, lr_schedule="cosine", lr_decay_start=20).train, 0)
    straight = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "a", progress=False)
    a = [r["loss"] for r in straight.fit() if "loss" in r]
    # the last step ran at the lr of step 19, below a tenth of the start
    assert straight.optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(cfg.train, 19))
    first = Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "b", progress=False)
    first.fit(max_steps=10)
    del first
    b = [r["loss"] for r in Trainer(cfg, paired=toy_segments(), run_dir=tmp_path / "b", progress=False).fit()
         if "loss" in r]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    constant = Trainer(smoke_cfg(max_steps=20, ema_decay=0.9), paired=toy_segments(), run_dir=tmp_path / "c",
                       progress=False)
    c = [r["loss"] for r in constant.fit() if "loss" in r]
    assert not np.allclose(a[12:], c[12:])  # the schedule changed the run
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'"):
        Trainer(smoke_cfg(lr_schedule="linear"), paired=toy_segments(), progress=False)


def test_velocity_note_weight_weighs_the_velocity_error_on_notes_only():
    from diffroll.training.steps import cell_weights

    cfg = get_config("smoke", velocity_note_weight=5.0)
    keys = cfg.model.n_keys
    roll = torch.zeros(2, 3 * keys, 8)
    roll[0, 10, 2:5] = 1.0  # frame: key 10 sounds on frames 2-4
    roll[0, 2 * keys + 10, 2:5] = 0.6  # its velocity
    w = cell_weights(cfg, roll)
    on = torch.zeros_like(w, dtype=torch.bool)
    on[0, 2 * keys + 10, 2:5] = True
    assert torch.all(w[on] == 5.0) and torch.all(w[~on] == 1.0)
    assert cell_weights(get_config("smoke"), roll) is None  # 1: the plain loss
    assert cell_weights(get_config("smoke", roll_channels=["frame"]), roll[:, :keys]) is None
    hist = Trainer(smoke_cfg(max_steps=3, velocity_note_weight=5.0), paired=toy_segments(), progress=False).fit()
    assert all(np.isfinite(r["loss"]) for r in hist if "loss" in r)
    with pytest.raises(ValueError, match="velocity_note_weight must be > 0"):
        Trainer(smoke_cfg(velocity_note_weight=0.0), paired=toy_segments(), progress=False)


def test_cell_weights_change_the_loss_only_where_they_are_not_one():
    from diffroll.core.diffusion import Diffusion

    cfg = get_config("smoke")
    diffusion = Diffusion.from_config(cfg.diffusion)
    roll, mel = torch.rand(2, 3 * cfg.model.n_keys, 16), torch.rand(2, cfg.model.n_mels, 16)
    model = lambda x_t, t, mel: torch.zeros_like(x_t)  # noqa: E731 - x̂0 = 0: the error is roll²
    rows = torch.tensor([1.0, 8.0, 1.0]).repeat_interleave(cfg.model.n_keys)
    plain = diffusion.training_loss(model, roll, mel, generator=torch.Generator().manual_seed(0), row_weights=rows)
    ones = diffusion.training_loss(model, roll, mel, generator=torch.Generator().manual_seed(0), row_weights=rows,
                                   cell_weights=torch.ones_like(roll))
    twice = diffusion.training_loss(model, roll, mel, generator=torch.Generator().manual_seed(0), row_weights=rows,
                                    cell_weights=2 * torch.ones_like(roll))
    assert float(ones) == pytest.approx(float(plain)) and float(twice) == pytest.approx(2 * float(plain))


def test_a_velocity_head_added_to_a_trained_net_trains_alone(tmp_path):
    """init_from a net without a head, train_only the head: the rest of the weights stay as they were."""
    a = Trainer(smoke_cfg(max_steps=5, ema_decay=None), paired=toy_segments(), run_dir=tmp_path / "a",
                progress=False)
    a.fit()
    cfg = smoke_cfg(max_steps=5, ema_decay=None, velocity_head=8, train_only=["velocity_head"], lr=1e-2)
    b = Trainer(cfg, paired=toy_segments(), progress=False, init_from=tmp_path / "a" / "checkpoint.pt")
    assert [id(p) for p in b.trained] == [id(p) for p in b.model.velocity_head.parameters()]
    head_before = {k: v.clone() for k, v in b.model.velocity_head.state_dict().items()}
    b.fit()
    trained = dict(b.model.named_parameters())
    for name, p in a.model.named_parameters():
        assert torch.equal(p, trained[name]), name
    assert any(not torch.equal(v, head_before[k]) for k, v in b.model.velocity_head.state_dict().items())


def test_a_pedal_channel_added_to_a_trained_net_starts_from_its_weights(tmp_path):
    """init_from a note-state net into a run whose roll adds the pedal channel: the old rows of x̂0
    are the source's exactly, the pedal rows start at zero and then learn."""
    pedal_roll = [*NOTE_STATE, "pedal"]
    a = Trainer(smoke_cfg(max_steps=5, ema_decay=None), paired=toy_segments(), run_dir=tmp_path / "a",
                progress=False)
    a.fit()
    b = Trainer(smoke_cfg(max_steps=5, ema_decay=None, roll_channels=pedal_roll, lr=1e-2),
                paired=toy_segments(channels=pedal_roll), progress=False, init_from=tmp_path / "a" / "checkpoint.pt")
    x_t, t, mel = torch.randn(2, 4 * 88, 32), torch.tensor([3, 7]), torch.randn(2, 229, 32)
    with torch.no_grad():
        x0_a, x0_b = a.model(x_t[:, :3 * 88], t, mel), b.model(x_t, t, mel)
    assert torch.allclose(x0_b[:, :3 * 88], x0_a, atol=1e-6) and not x0_b[:, 3 * 88:].any()
    b.fit()
    other = x_t.clone()
    other[:, 3 * 88:] = torch.randn(2, 88, 32)  # the pedal rows of x_t are not read (model.DiffRoll)
    with torch.no_grad():
        assert torch.equal(b.model(other, t, mel), b.model(x_t, t, mel))
    with torch.no_grad():
        assert b.model(x_t, t, mel)[:, 3 * 88:].abs().max() > 0
    with pytest.raises(CheckpointError, match="only add roll channels after"):  # dropping a channel
        two = ["frame", "onset"]
        Trainer(smoke_cfg(max_steps=1, roll_channels=two), paired=toy_segments(channels=two), progress=False,
                init_from=tmp_path / "a" / "checkpoint.pt")


def test_a_pedal_head_trains_alone_on_the_pedal_error(tmp_path):
    """A pedal channel and a pedal head added to a trained note-state net, trained alone on the pedal
    rows' error (channel weights 0, 0, 0, 1): every other weight, and so x̂0's note rows, stay as they were."""
    pedal_roll = [*NOTE_STATE, "pedal"]
    a = Trainer(smoke_cfg(max_steps=5, ema_decay=None), paired=toy_segments(), run_dir=tmp_path / "a",
                progress=False)
    a.fit()
    cfg = smoke_cfg(max_steps=20, ema_decay=None, roll_channels=pedal_roll, pedal_head=8, train_only=["pedal_head"],
                    channel_weights=[0.0, 0.0, 0.0, 1.0], lr=1e-2)
    b = Trainer(cfg, paired=toy_segments(channels=pedal_roll), progress=False,
                init_from=tmp_path / "a" / "checkpoint.pt")
    assert [id(p) for p in b.trained] == [id(p) for p in b.model.pedal_head.parameters()]
    x_t, t, mel = torch.randn(2, 4 * 88, 32), torch.tensor([3, 7]), torch.randn(2, 229, 32)
    losses = [h["loss"] for h in b.fit() if "loss" in h]
    assert losses[-1] < losses[0]
    trained = dict(b.model.named_parameters())
    for name, p in a.model.named_parameters():
        if name not in ("input_proj.weight", "output_proj.weight", "output_proj.bias"):
            assert torch.equal(p, trained[name]), name
    b.model.eval()
    with torch.no_grad():
        x0_a, x0_b = a.model.eval()(x_t[:, :3 * 88], t, mel), b.model(x_t, t, mel)
    assert torch.allclose(x0_b[:, :3 * 88], x0_a, atol=1e-6) and x0_b[:, 3 * 88:].abs().max() > 0
    with pytest.raises(ValueError, match="pedal_head needs a pedal roll channel"):
        Trainer(smoke_cfg(max_steps=1, pedal_head=8), paired=toy_segments(), progress=False)


def test_train_only_and_init_from_refuse_what_does_not_fit(tmp_path):
    with pytest.raises(ValueError, match="not modules of this model"):
        Trainer(smoke_cfg(max_steps=1, train_only=["velocity_head"]), paired=toy_segments(), progress=False)
    a = Trainer(smoke_cfg(max_steps=1, velocity_head=8), paired=toy_segments(), run_dir=tmp_path / "a",
                progress=False)
    a.fit()
    with pytest.raises(CheckpointError, match="differs"):  # a head cannot be dropped silently
        Trainer(smoke_cfg(max_steps=1), paired=toy_segments(), progress=False,
                init_from=tmp_path / "a" / "checkpoint.pt")


def test_throughput_times_the_given_batch_and_precision():
    """benchmarks/train_throughput.py's timing: the config's batch and precision, eager by default."""
    from diffroll.training.trainer import throughput

    t = throughput(get_config("smoke").override(batch_size=3, precision="bf16"), steps=1, device="cpu")
    assert (t["batch_size"], t["precision"], t["compiled"]) == (3, "bf16", False)
    assert t["samples_per_s"] == pytest.approx(3 * t["steps_per_s"])


# --- no silent wrong results (issue 30) -----------------------------------------------------------

def test_a_diverging_run_stops_without_saving_over_the_last_good_checkpoint(tmp_path):
    from diffroll.training.checks import TrainingError

    Trainer(smoke_cfg(max_steps=10), paired=toy_segments(), run_dir=tmp_path, progress=False).fit()
    good = load_checkpoint(tmp_path / "checkpoint.pt")
    wild = Trainer(smoke_cfg(max_steps=40, lr=1e6), paired=toy_segments(), run_dir=tmp_path, progress=False)
    assert wild.step == 10
    with pytest.raises(TrainingError, match=r"step 1\d: the training loss is (nan|inf) .*last good checkpoint"):
        wild.fit()
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["step"] == 10 and all(torch.equal(kept["model"][k], v) for k, v in good["model"].items())
    with torch.no_grad():
        wild.model.output_proj.bias[0] = float("nan")
    with pytest.raises(TrainingError, match="weight output_proj.bias is NaN or infinite: not saved"):
        wild.save()  # non-finite weights are never written
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 10


def test_resuming_from_a_corrupt_checkpoint_is_refused(tmp_path):
    Trainer(smoke_cfg(max_steps=2), paired=toy_segments(), run_dir=tmp_path, progress=False).fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["model"]["output_proj.bias"][3] = float("inf")
    torch.save(state, tmp_path / "checkpoint.pt")  # the stored checksum no longer matches
    with pytest.raises(CheckpointError, match="checkpoint.pt: corrupt: its model weights do not match the checksum"):
        Trainer(smoke_cfg(max_steps=4), paired=toy_segments(), run_dir=tmp_path, progress=False)
    del state["weights_sha256"]  # written before checksums: the NaN / inf check still refuses it
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite values \\(first: output_proj.bias\\)"):
        Trainer(smoke_cfg(max_steps=4), paired=toy_segments(), run_dir=tmp_path, progress=False)


@pytest.mark.parametrize("extra, says", [
    (["--lr", "nan"], "lr must be a finite number > 0, got nan"),
    (["--lr", "1e400"], "lr must be a finite number > 0"),
    (["--batch-size", "0"], "batch_size must be a whole number >= 1, got 0"),
    (["--set", 'lr="abc"'], "lr must be float, got 'abc'"),
    (["--set", "channels=1.5"], "channels must be int, got 1.5"),
    (["--max-steps", "-5"], "max_steps must be a whole number >= 1, got -5"),
    (["--p", "2"], "p (the dropout probability) must be in [0, 1]"),
    (["--seed", "-1"], "--seed: must be from 0 to 2**63 - 1"),
    (["--val-pieces", "-1"], "--val-pieces: must be >= 0"),
    (["--device", "cuda:7"], "--device cuda:7: no such CUDA device here"),
    (["--device", "tpu9"], "--device tpu9: "),
    (["--init-from", "nope.pt"], "--init-from nope.pt: no such checkpoint file"),
])
def test_train_options_are_checked_before_any_work(tmp_path, monkeypatch, capsys, extra, says):
    from diffroll import cli

    monkeypatch.setenv("DIFFROLL_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--scale", "smoke", "--run-dir", str(tmp_path / "run"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # no corpus built, no run folder
