"""The ``diffroll`` command: outputs, messages and exit codes, for good and bad inputs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from diffroll import cli
from diffroll.checkpoint import save_checkpoint
from diffroll.config import get_config
from diffroll.model import DiffRoll

SR = 16000


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A smoke-sized model whose x̂0 depends on its input (random output layer), saved as a checkpoint."""
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = DiffRoll(cfg.model, len(cfg.roll.roll_channels))
    torch.nn.init.normal_(model.output_proj.weight, std=0.5)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "smoke.pt",
                           {"config": cfg.to_dict(), "model": model.state_dict()})


def tone(seconds=3.0, sr=SR, channels=1, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.5 * x], axis=1)


def run(*argv, ckpt=None):
    args = [str(a) for a in argv] + (["--checkpoint", str(ckpt)] if ckpt else [])
    return cli.main(args + ["--steps", "2", "--quiet"])


def midi_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_transcribe_files_and_folders(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "mono.wav", tone(), SR)
    (tmp_path / "set" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "set" / "a.b.flac", tone(2.0, 44100, channels=2), 44100)  # stereo, 44.1 kHz
    sf.write(tmp_path / "set" / "sub" / "c.ogg", tone(1.0, 22050), 22050)
    (tmp_path / "set" / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert run("transcribe", tmp_path / "mono.wav", tmp_path / "set", "-o", out, ckpt=ckpt) == 0
    assert midi_files(out) == ["a.b.mid", "mono.mid", "sub/c.mid"]
    for f in out.rglob("*.mid"):
        pretty_midi.PrettyMIDI(str(f))  # readable MIDI
    text = capsys.readouterr().out
    assert "3 files written, 0 failed" in text and "real-time factor" in text


def test_bad_inputs_fail_alone(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "good.wav", tone(), SR)
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("hi")
    out = tmp_path / "out"
    code = run("transcribe", tmp_path / "missing.wav", tmp_path / "junk.wav", tmp_path / "empty_dir",
               tmp_path / "texts", tmp_path / "good.wav", "-o", out, ckpt=ckpt)
    assert code == 1
    assert midi_files(out) == ["good.mid"]  # nothing left behind for the failed input, no temp files
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4, err  # one line per bad input
    assert any("missing.wav" in e and "no such file" in e for e in err)
    assert any("junk.wav" in e and "not a readable audio file" in e for e in err)
    assert any("empty_dir" in e and "no audio files" in e for e in err)
    assert any("texts" in e and "no audio files" in e for e in err)


def test_empty_and_silent_audio_give_empty_midi(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    sf.write(tmp_path / "silent.flac", np.zeros(SR * 30, np.float32), SR)
    sf.write(tmp_path / "blip.wav", np.full(100, 0.5, np.float32), SR)  # shorter than one frame
    out = tmp_path / "out"
    assert run("transcribe", tmp_path / "empty.wav", tmp_path / "silent.flac", tmp_path / "blip.wav", "-o", out,
               ckpt=ckpt) == 0
    for name in ("empty", "silent", "blip"):
        pm = pretty_midi.PrettyMIDI(str(out / f"{name}.mid"))  # a valid MIDI file without notes
        assert sum(len(i.notes) for i in pm.instruments) == 0
    text = capsys.readouterr().out
    assert "empty audio" in text and "silent audio" in text and "shorter than one frame" in text


def test_bad_checkpoints_are_one_line_errors(tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "x.wav", tone(), SR)
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    monkeypatch.setenv("DIFFROLL_ROOT", str(tmp_path))  # no bundled model here
    for ckpt, says in [(tmp_path / "junk.pt", "junk.pt: not a readable checkpoint"),
                       (tmp_path / "other.pt", "other.pt: not a DiffRoll checkpoint"),
                       (tmp_path / "nope.pt", "nope.pt: no such checkpoint"),
                       (None, "diffroll-cpu.pt: the bundled model is missing")]:
        assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "out", ckpt=ckpt) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    for argv in (["transcribe", "x.wav"], ["inpaint", "x.wav", "--mask", "5-3", "-o", "y.mid"],
                 ["inpaint", "x.wav", "--mask", "4:2", "-o", "y.mid"], ["transcribe", "x.wav", "-o", "o", "--steps", "0"],
                 ["transcribe", "x.wav", "-o", "o", "--sampler", "euler"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_same_output_name_twice_is_refused_not_overwritten(tmp_path, ckpt, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "a" / "x.wav", tone(), SR)
    sf.write(tmp_path / "b" / "x.flac", tone(), SR)
    assert run("transcribe", tmp_path / "a" / "x.wav", tmp_path / "b" / "x.flac", "-o", tmp_path / "o", ckpt=ckpt) == 1
    assert "already the output of" in capsys.readouterr().err
    assert midi_files(tmp_path / "o") == ["x.mid"]


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    class Exploding:
        def write(self, path):
            Path(path).write_bytes(b"MThd partial")
            raise OSError("disk full")

    with pytest.raises(OSError):
        cli.write_midi_atomically(Exploding(), tmp_path / "out" / "x.mid")
    assert list((tmp_path / "out").iterdir()) == []


def test_same_seed_same_midi(tmp_path, ckpt):
    sf.write(tmp_path / "x.wav", tone(5.0), SR)
    for d in ("a", "b", "c"):
        seed = "1" if d != "c" else "2"
        assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / d, "--sampler", "ddpm", "--seed", seed,
                   ckpt=ckpt) == 0
    notes = {d: [(n.pitch, n.start, n.end) for n in pretty_midi.PrettyMIDI(str(tmp_path / d / "x.mid")).instruments[0].notes]
             for d in ("a", "b", "c")}
    assert notes["a"] == notes["b"] and len(notes["a"]) > 0
    assert notes["a"] != notes["c"]


def test_generate_and_inpaint(tmp_path, ckpt, capsys):
    assert run("generate", "-o", tmp_path / "gen.mid", "--seconds", "5", ckpt=ckpt) == 0
    assert pretty_midi.PrettyMIDI(str(tmp_path / "gen.mid")).instruments[0].notes
    sf.write(tmp_path / "x.wav", tone(6.0), SR)
    assert run("inpaint", tmp_path / "x.wav", "--mask", "1:2,3.5:4", "-o", tmp_path / "inp.mid", ckpt=ckpt) == 0
    assert (tmp_path / "inp.mid").is_file()
    assert run("inpaint", tmp_path / "x.wav", "--mask", "10:12", "-o", tmp_path / "far.mid", ckpt=ckpt) == 1
    assert "mask lies outside the audio" in capsys.readouterr().err
    assert not (tmp_path / "far.mid").exists()


def test_console_script(tmp_path, ckpt):
    """One real run of the installed ``diffroll`` command: one good and one missing input."""
    sf.write(tmp_path / "x.wav", tone(), SR)
    exe = Path(sys.executable).with_name("diffroll")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(exe), "transcribe", str(tmp_path / "x.wav"), str(tmp_path / "gone.wav"),
                           "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt), "--steps", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "gone.wav: no such file or folder" in proc.stderr
    assert "1 file written, 1 failed" in proc.stdout
    assert (tmp_path / "out" / "x.mid").is_file()
