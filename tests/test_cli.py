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
from diffroll.cli import files, options
from diffroll.core.checkpoint import save_checkpoint
from diffroll.core.config import get_config
from diffroll.core.model import DiffRoll

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
    return cli.main(args + ["--steps", "2", "--quiet", "--threads", "1"])


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


# --- outputs musicians expect -------------------------------------------------------------------

def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_notes_csv_holds_the_midi_notes(tmp_path, ckpt):
    sf.write(tmp_path / "x.wav", tone(5.0), SR)
    assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", "--notes-csv", ckpt=ckpt) == 0
    header, rows = read_csv(tmp_path / "o" / "x.csv")
    assert header == ["onset_s", "offset_s", "pitch", "velocity", "confidence"]
    midi = sorted((n.start, n.end, n.pitch, n.velocity)
                  for n in pretty_midi.PrettyMIDI(str(tmp_path / "o" / "x.mid")).instruments[0].notes)
    assert len(rows) == len(midi) > 0
    rows.sort(key=lambda r: (float(r[0]), float(r[1]), int(r[2])))
    for row, (start, end, pitch, velocity) in zip(rows, midi):
        assert (int(row[2]), int(row[3])) == (pitch, velocity)
        assert abs(float(row[0]) - start) < 1e-3 and abs(float(row[1]) - end) < 1e-3  # a MIDI tick is 0.5 ms
        assert row[4] == "1.0"  # one sample: certain
    for combine, shares in (("vote", {"0.6667", "1.0"}),  # a majority of 3: 2 or 3 votes
                            ("mean", {"0.0", "0.3333", "0.6667", "1.0"})):  # read from the mean: any share
        out = tmp_path / combine
        assert run("transcribe", tmp_path / "x.wav", "-o", out, "--notes-csv", "--samples", "3", "--combine", combine,
                   ckpt=ckpt) == 0
        _, rows = read_csv(out / "x.csv")
        assert rows and {r[4] for r in rows} <= shares
        assert len(rows) == len(pretty_midi.PrettyMIDI(str(out / "x.mid")).instruments[0].notes)
    with pytest.raises(SystemExit) as exc:
        run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "m", "--samples", "3", "--combine", "median", ckpt=ckpt)
    assert exc.value.code == 2 and not (tmp_path / "m").exists()


def test_sonify_writes_the_transcription_as_audio(tmp_path, ckpt):
    sf.write(tmp_path / "x.wav", tone(4.0), SR)
    assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", "--sonify", "--soundfont", "TimGM6mb",
               ckpt=ckpt) == 0
    audio, rate = sf.read(tmp_path / "o" / "x.sonified.wav")
    assert rate == 44100 and len(audio) >= 4.0 * rate and np.abs(audio).max() > 0.01
    with pytest.raises(SystemExit) as exc:
        run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "p", "--sonify", "--soundfont", "NoSuchFont", ckpt=ckpt)
    assert exc.value.code == 2 and not (tmp_path / "p").exists()


def test_sonify_renders_in_segments_like_a_whole(tmp_path):
    """Rendering a minute of onsets at a time and adding the overlaps sounds like one render."""
    from diffroll.transcription.outputs import sonify
    from diffroll.corpus.render import render_midi
    from diffroll.core.roll import Note, notes_to_midi

    notes = [Note(0.5 + 0.7 * i, 1.5 + 0.7 * i, 60 + i % 12, 90) for i in range(12)]
    sonify(notes, tmp_path / "seg.wav", "TimGM6mb", 16000, seconds=12.0, segment_seconds=2.0)
    seg, _ = sf.read(tmp_path / "seg.wav")
    whole = render_midi(notes_to_midi(notes), "TimGM6mb", 16000)
    n = min(len(seg), len(whole))
    assert len(seg) >= 12 * 16000
    assert np.abs(seg[:n] - whole[:n]).max() < 0.05 * np.abs(whole).max() + 2 / 32768


# --- no silent wrong results ----------------------------------------------------------------------

def test_nan_audio_is_refused_and_the_others_still_done(tmp_path, ckpt, capsys):
    bad = tone(3.0)
    bad[[8000, 8001, 24000]] = [np.nan, np.inf, -np.inf]
    sf.write(tmp_path / "bad.wav", bad, SR, subtype="FLOAT")
    sf.write(tmp_path / "good.wav", tone(3.0), SR)
    out = tmp_path / "out"
    assert run("transcribe", tmp_path / "bad.wav", tmp_path / "good.wav", "-o", out, "--notes-csv", ckpt=ckpt) == 1
    err = capsys.readouterr().err
    assert "bad.wav: 3 samples are NaN or infinite, from 0.500 s (sample 8000) to 1.500 s (sample 24000)" in err
    assert "--nonfinite zero" in err
    assert midi_files(out) == ["good.csv", "good.mid"]  # nothing written for bad.wav, no temp files
    assert run("transcribe", tmp_path / "bad.wav", "-o", out, "--nonfinite", "zero", ckpt=ckpt) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "bad.wav: 3 samples are NaN" in err and "replaced them by 0" in err
    assert (out / "bad.mid").is_file()


def _exits_2(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([str(a) for a in argv])
    assert exc.value.code == 2, argv
    return capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    ["--w", "nan"], ["--w", "inf"], ["--w", "-inf"], ["--threshold", "nan"], ["--frame-threshold", "1.5"],
    ["--frame-threshold", "0"], ["--onset-threshold", "nan"], ["--min-note-ms", "-5"], ["--min-note-ms", "nan"],
    ["--samples", "0"], ["--batch-size", "0"], ["--nonfinite", "ignore"], ["--offset-threshold", "2"],
    ["--restrike-threshold", "0"], ["--pedal-threshold", "1"], ["--precision", "fp16"],
    ["--w", "-5"], ["--w", "100"], ["--w", "-1"], ["--seed", str(2 ** 64)], ["--seed", "-1"], ["--truncated", "pad"],
])
def test_bad_numbers_are_usage_errors(tmp_path, capsys, extra):
    sf.write(tmp_path / "x.wav", tone(), SR)
    err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", *extra], capsys)
    assert extra[0] in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["generate", "-o", "g.mid", "--seconds", "nan"], ["generate", "-o", "g.mid", "--seconds", "inf"],
    ["generate", "-o", "g.mid", "--seconds", "1e9"], ["generate", "-o", "g.mid", "--seconds", "0"],
    ["inpaint", "x.wav", "--mask", "1:inf", "-o", "y.mid"], ["inpaint", "x.wav", "--mask", "nan:2", "-o", "y.mid"],
])
def test_bad_lengths_and_spans_are_usage_errors(tmp_path, capsys, argv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _exits_2(argv, capsys)
    assert list(tmp_path.iterdir()) == []


def test_steps_above_T_is_a_usage_error_naming_T(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "x.wav", tone(), SR)
    err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", "--checkpoint", ckpt, "--steps", "21"],
                   capsys)
    assert "--steps 21 is more than the model's T = 20" in err
    assert not (tmp_path / "o").exists()
    assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", "--steps", "20", ckpt=ckpt) == 0


def test_output_folder_is_checked_first_and_named(tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "x.wav", tone(), SR)
    (tmp_path / "afile").write_text("not a folder")
    bogus = tmp_path / "no-model.pt"  # never loaded: the folder is checked before anything else
    for outdir in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", outdir, "--checkpoint", bogus], capsys)
        assert f"output folder {outdir} is not a folder" in err
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", tmp_path / "locked", "--checkpoint", bogus], capsys)
    assert f"output folder {tmp_path / 'locked'} is not writable" in err and "Permission denied" in err


def test_generate_to_a_folder_is_a_usage_error(tmp_path, capsys):
    err = _exits_2(["generate", "-o", tmp_path, "--seconds", "2"], capsys)
    assert f"-o {tmp_path} is a folder" in err


def test_existing_outputs_are_not_overwritten_without_overwrite(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "a.wav", tone(), SR)
    sf.write(tmp_path / "b.wav", tone(), SR)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mid").write_bytes(b"precious")
    (out / "b.csv").write_text("precious")
    assert run("transcribe", tmp_path / "a.wav", tmp_path / "b.wav", "-o", out, "--notes-csv", ckpt=ckpt) == 1
    err = capsys.readouterr().err
    assert f"{out / 'a.mid'} already exists: not overwritten (pass --overwrite to replace)" in err
    assert f"{out / 'b.csv'} already exists" in err
    assert (out / "a.mid").read_bytes() == b"precious" and (out / "b.csv").read_text() == "precious"
    assert midi_files(out) == ["a.mid", "b.csv"]  # both refused before any work
    sf.write(tmp_path / "c.wav", tone(), SR)
    assert run("transcribe", tmp_path / "a.wav", tmp_path / "c.wav", "-o", out, ckpt=ckpt) == 1
    assert (out / "c.mid").is_file()  # the other input is still done
    assert run("transcribe", tmp_path / "a.wav", tmp_path / "b.wav", "-o", out, "--notes-csv", "--overwrite",
               ckpt=ckpt) == 0
    pretty_midi.PrettyMIDI(str(out / "a.mid"))
    assert (out / "b.csv").read_text().startswith("onset_s,")
    assert run("generate", "-o", out / "a.mid", "--seconds", "2", ckpt=ckpt) == 1
    assert "already exists" in capsys.readouterr().err


def test_help_says_the_result_does_not_depend_on_the_batch_size(capsys):
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the result does not depend on it" in text and "depends on it:" not in text
    for option in ("--samples", "--combine", "--notes-csv", "--sonify", "--overwrite", "--nonfinite", "--onset-threshold",
                   "--frame-threshold", "--min-note-ms", "--threads", "--offset-threshold", "--restrike-threshold",
                   "--pedal-threshold", "--no-pedal"):
        assert option in text


def test_generate_and_inpaint_default_to_the_model_that_generates(tmp_path, monkeypatch):
    """Without --checkpoint, transcribe loads the bundled piano transcriber, generate and inpaint the
    bundled generative model (checkpoints/diffroll-generative-cpu.pt)."""
    import diffroll.core.checkpoint
    import diffroll.transcription.pipeline
    from diffroll.core.paths import generative_checkpoint

    loaded = []

    def record(path=None, device="cpu"):
        loaded.append(path)
        raise diffroll.core.checkpoint.CheckpointError("recorded")

    monkeypatch.setattr(diffroll.transcription.pipeline.Pipeline, "from_checkpoint", record)
    sf.write(tmp_path / "x.wav", tone(3.0), SR)
    run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "out")
    run("generate", "-o", tmp_path / "gen.mid")
    run("inpaint", tmp_path / "x.wav", "--mask", "1:2", "-o", tmp_path / "inp.mid")
    assert loaded == [None, generative_checkpoint(), generative_checkpoint()]


# --- no silent wrong results, part two (issue 30) -------------------------------------------------

def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def test_truncated_files_are_refused_naming_what_is_missing(tmp_path, ckpt, capfd):
    """A WAV cut to a third of its bytes (libsndfile reads only what is there) and an MP3 cut
    short (the decoder stops early: the block reader used to hand on uninitialised memory).
    capfd: the C library's stderr too."""
    sf.write(tmp_path / "full.wav", tone(12.4), SR)
    sf.write(tmp_path / "full.mp3", tone(12.4), SR, format="MP3")
    wav = _cut(tmp_path / "full.wav", tmp_path / "short.wav", 1 / 3)
    mp3 = _cut(tmp_path / "full.mp3", tmp_path / "cut.mp3", 1 / 3)
    out = tmp_path / "out"
    assert run("transcribe", wav, mp3, tmp_path / "full.mp3", "-o", out, ckpt=ckpt) == 1
    err = capfd.readouterr().err
    assert "short.wav: truncated: its header says 12.400 s (198400 frames), 4.132 s decode (8.268 s missing)" in err
    assert "cut.mp3: truncated: its header says 12.400 s" in err and "--truncated warn" in err
    assert "libmpg123" not in err and len(err.strip().splitlines()) == 2  # one line a file, no decoder noise
    assert midi_files(out) == ["full.mid"]  # the whole file is still done
    for d in ("w1", "w2"):  # with the flag: what decodes, a warning, the same result every run
        assert run("transcribe", wav, mp3, "-o", tmp_path / d, "--truncated", "warn", ckpt=ckpt) == 0
        err = capfd.readouterr().err
        assert "warning: " in err and "cut.mp3: truncated" in err and "s missing); transcribed what decodes" in err
    for name in ("short.mid", "cut.mid"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()


def test_a_truncated_ogg_is_refused_by_its_missing_end_of_stream_page(tmp_path, ckpt, capfd):
    """An Ogg file has no length in a header: cut at 70 % it reads as a shorter file (and at 50 %
    as no audio at all); only the missing end-of-stream page shows it."""
    sf.write(tmp_path / "full.ogg", tone(12.0), SR, format="OGG", subtype="VORBIS")
    cut = _cut(tmp_path / "full.ogg", tmp_path / "cut.ogg", 0.7)
    empty = _cut(tmp_path / "full.ogg", tmp_path / "empty.ogg", 0.5)
    assert 0 < sf.info(str(cut)).frames < 12.0 * SR and sf.info(str(empty)).frames == 0
    assert run("transcribe", cut, empty, tmp_path / "full.ogg", "-o", tmp_path / "out", ckpt=ckpt) == 1
    err = capfd.readouterr().err
    assert "cut.ogg: truncated: its last Ogg page does not end the stream" in err and "--truncated warn" in err
    assert "empty.ogg: truncated" in err and midi_files(tmp_path / "out") == ["full.mid"]
    assert run("transcribe", cut, "-o", tmp_path / "w", "--truncated", "warn", ckpt=ckpt) == 0
    assert "cut.ogg: truncated" in capfd.readouterr().err and midi_files(tmp_path / "w") == ["cut.mid"]


def test_a_long_mp3_is_streamed_as_it_decodes(tmp_path):
    """Read block by block, an MP3 gives the samples of one whole read: soundfile's seek after each
    read (libsndfile's MP3 seek is approximate) used to put a burst of wrong samples after every
    block, past 2**20 frames (24 s at 44.1 kHz) with the old blocks."""
    from diffroll.core.audio import load_audio
    from diffroll.transcription.audio_stream import read_audio

    sf.write(tmp_path / "long.mp3", tone(26.0, 44100, channels=2), 44100, format="MP3")
    whole, streamed = load_audio(tmp_path / "long.mp3"), read_audio(tmp_path / "long.mp3")
    assert len(streamed) == len(whole) == 26 * SR
    assert np.abs(streamed - whole).max() < 1e-6


def test_a_file_written_by_another_run_meanwhile_is_kept(tmp_path, ckpt, capsys, monkeypatch):
    """The existence check is made before the work; the final claim must not replace a file that
    another run wrote meanwhile (here: the other run writes x.csv while this one transcribes)."""
    from diffroll.transcription.outputs import Transcription

    sf.write(tmp_path / "x.wav", tone(), SR)
    sf.write(tmp_path / "y.wav", tone(), SR)
    out = tmp_path / "out"
    write_midi = Transcription.write_midi

    def racing(self, path):
        if Path(path).name.startswith(".x.mid"):
            (out / "x.csv").write_text("the other run's")
        return write_midi(self, path)

    monkeypatch.setattr(Transcription, "write_midi", racing)
    assert run("transcribe", tmp_path / "x.wav", tmp_path / "y.wav", "-o", out, "--notes-csv", ckpt=ckpt) == 1
    err = capsys.readouterr().err
    assert f"{out / 'x.csv'} was written by another run meanwhile: not overwritten" in err
    assert (out / "x.csv").read_text() == "the other run's"
    assert midi_files(out) == ["x.csv", "y.csv", "y.mid"]  # x.mid taken back, no temp files; y done


def test_flipped_weight_bytes_and_bad_checkpoints_are_refused(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "x.wav", tone(), SR)
    data = bytearray(ckpt.read_bytes())
    weight = torch.load(ckpt, weights_only=True)["model"]["output_proj.weight"].numpy().tobytes()
    at = data.find(weight[:64])
    assert at > 0
    data[at + 40] ^= 0x40  # one bit of one weight
    (tmp_path / "flipped.pt").write_bytes(data)
    state = torch.load(ckpt, weights_only=True)
    state["model"]["output_proj.weight"][0, 0] = float("nan")
    del state["weights_sha256"]  # as a run before checksums would have written it
    torch.save(state, tmp_path / "nan.pt")
    torch.save({"format": "diffroll-checkpoint-v1", "model": Path("x")}, tmp_path / "object.pt")
    _cut(ckpt, tmp_path / "short.pt", 0.5)
    for name, says in [("flipped.pt", "flipped.pt: corrupt: its model weights do not match the checksum"),
                       ("nan.pt", "nan.pt: 1 model weight tensor(s) hold NaN or infinite values (first: output_proj"),
                       ("object.pt", "object.pt: not a readable checkpoint (corrupt, or not written by diffroll"),
                       ("short.pt", "short.pt: not a readable checkpoint (truncated or corrupt")]:
        assert run("transcribe", tmp_path / "x.wav", "-o", tmp_path / "out", ckpt=tmp_path / name) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and "weights_only" not in err[0], err
    assert not (tmp_path / "out").exists()
    assert "weights_sha256" in torch.load(ckpt, weights_only=True)  # every checkpoint written has one


def test_stale_temp_files_of_dead_runs_are_removed(tmp_path, ckpt):
    sf.write(tmp_path / "x.wav", tone(), SR)
    out = tmp_path / "out"
    out.mkdir()
    dead = next(pid for pid in range(4_000_000, 3_000_000, -1) if not files._alive(pid))
    (out / f".x.mid.{dead}.tmp").write_bytes(b"killed while writing")
    (out / f".y.mid.{os.getppid()}.tmp").write_bytes(b"a live run's")  # pytest's parent: running
    (out / "notes.tmp").write_text("not ours")
    assert run("transcribe", tmp_path / "x.wav", "-o", out, ckpt=ckpt) == 0
    assert midi_files(out) == [f".y.mid.{os.getppid()}.tmp", "notes.tmp", "x.mid"]


def test_sigterm_is_handled_like_sigint(tmp_path, ckpt):
    """SIGTERM during the second of three files: exit 143, the first file's outputs, no temp files."""
    import signal

    for name in ("a", "b", "c"):
        sf.write(tmp_path / f"{name}.wav", tone(30.0), SR)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("diffroll")
    proc = subprocess.Popen([str(exe), "transcribe", *(str(tmp_path / f"{n}.wav") for n in "abc"), "-o", str(out),
                             "--checkpoint", str(ckpt), "--steps", "20", "--threads", "1", "--notes-csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    first = proc.stdout.readline()  # a.wav -> ... : the second file is being transcribed
    assert "a.wav ->" in first, first
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "diffroll: error: terminated (SIGTERM)" in err
    assert midi_files(out) == ["a.csv", "a.mid"]


def _sleep_forever(ready):
    import time
    ready.set()
    time.sleep(60)


def test_forked_workers_end_quietly_on_sigterm(capfd):
    """A multiprocessing pool ends its forked workers with SIGTERM: a worker that inherited the CLI's
    handler exits 143 at once, without raising Terminated (a traceback on stderr) in the worker."""
    import multiprocessing
    import signal

    import diffroll.cli as cli

    previous = signal.signal(signal.SIGTERM, cli._terminate)
    cli._MAIN_PID = os.getpid()
    try:
        fork = multiprocessing.get_context("fork")
        ready = fork.Event()
        worker = fork.Process(target=_sleep_forever, args=(ready,))
        worker.start()
        assert ready.wait(timeout=30)  # (a signal in the instant after fork is dropped by Python)
        worker.terminate()  # SIGTERM, as Pool.terminate() sends
        worker.join(timeout=30)
    finally:
        signal.signal(signal.SIGTERM, previous)
        cli._MAIN_PID = None
    assert worker.exitcode == 143
    assert "Terminated" not in capfd.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_a_cuda_device_that_is_not_there_is_a_usage_error(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "x.wav", tone(), SR)
    err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", tmp_path / "o", "--checkpoint", ckpt, "--device", "cuda"],
                   capsys)
    assert "--device cuda: no CUDA device is available: use --device cpu" in err


def test_usage_errors_come_before_per_input_messages(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "x.wav", tone(), SR)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.mid").write_bytes(b"precious")
    err = _exits_2(["transcribe", tmp_path / "x.wav", "-o", tmp_path / "out", "--checkpoint", ckpt, "--steps", "21"],
                   capsys)
    assert "--steps 21 is more than the model's T" in err and "already exists" not in err
    assert "standard input" in _exits_2(["transcribe", "-", "-o", tmp_path / "o"], capsys)
    assert "standard input" in _exits_2(["generate", "-o", "-"], capsys)


def test_non_utf8_names_zero_seconds_and_no_progress_bar_off_a_terminal(tmp_path, ckpt, capsys):
    name = os.fsdecode(b"caf\xe9.wav")  # not UTF-8: Python keeps the byte as a surrogate
    sf.write(os.fsencode(tmp_path / name), tone(), SR)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    args = [str(tmp_path / name), str(tmp_path / "empty.wav"), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpt),
            "--steps", "2", "--threads", "1"]
    assert cli.main(["transcribe", *args]) == 0  # no --quiet: stderr is not a terminal here
    text, err = capsys.readouterr()
    assert "caf\\udce9.wav ->" in text and (tmp_path / "o" / os.fsdecode(b"caf\xe9.mid")).is_file()
    assert err == ""  # no progress bar
    assert cli.main(["transcribe", str(tmp_path / "empty.wav"), "-o", str(tmp_path / "p"), "--checkpoint", str(ckpt),
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "0.0 s of audio" in text and "nan" not in text


def test_help_and_version_do_not_import_torch():
    code = ("import sys\nfrom diffroll import cli\nfor argv in (['--help'], ['transcribe', '--help'], ['--version']):\n"
            "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "diffroll 0.2.0" in proc.stdout and proc.stdout.strip().endswith("False")


def test_the_choices_the_parser_repeats_are_the_modules():
    from diffroll.core import diffusion
    from diffroll.transcription import audio_stream, settings

    assert options.SAMPLERS is diffusion.SAMPLERS and options.PRECISIONS is settings.PRECISIONS
    assert options.COMBINES is settings.COMBINES
    args = options.build_parser().parse_args(["transcribe", "x.wav", "-o", "out"])
    assert all(getattr(args, name) is None for name in options.SAMPLING_OPTIONS)  # the defaults: SamplingSettings'
    assert options.NONFINITE_POLICIES == audio_stream.NONFINITE_POLICIES
    assert options.TRUNCATED_POLICIES == audio_stream.TRUNCATED_POLICIES


# The child's peak of anonymous memory (RssAnon: heap and arrays), read from /proc every 2 ms. Not its
# peak RSS: that also counts the pages of torch's libraries it happens to map, which vary run to run by
# several MiB with the page cache (most where the venv lies on tmpfs), whatever the audio's length.
PEAK_OF_CLI = """import subprocess, sys, tempfile, time
log = tempfile.TemporaryFile()  # not a pipe: nobody reads one while polling, and a full one would block the CLI
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=log)
peak = 0
while child.poll() is None:
    try:
        with open(f"/proc/{child.pid}/status") as status:
            kb = next((int(line.split()[1]) for line in status if line.startswith("RssAnon:")), 0)
    except (OSError, ValueError):
        kb = 0
    peak = max(peak, kb)
    time.sleep(0.002)
log.seek(0)
err = log.read().decode(errors="replace")
if child.returncode:
    sys.exit(f"exit {child.returncode}: {err[-2000:]}")
print(peak // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
def test_peak_memory_is_flat_in_the_length_of_the_audio(tmp_path):
    """`diffroll transcribe` on 30 s and on 4 min of music: the same peak of anonymous memory within
    5 MiB (holding the audio would add 13 MiB, the roll 7 MiB; run to run it moves by up to 3). The
    bundled model on 5 and 60 min: README."""
    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = DiffRoll(cfg.model, len(cfg.roll.roll_channels))
    torch.nn.init.normal_(model.output_proj.weight, std=0.05)  # a few notes a second
    ckpt = save_checkpoint(tmp_path / "few.pt", {"config": cfg.to_dict(), "model": model.state_dict()})
    rng = np.random.default_rng(0)
    pitches = 220 * 2 ** (rng.integers(0, 24, 4 * 240) / 12)
    t = np.arange(240 * SR) / SR
    music = (0.3 * np.sin(2 * np.pi * np.repeat(pitches, SR // 4) * t)).astype(np.float32)
    peaks = {}
    for seconds in (30, 240):
        sf.write(tmp_path / f"{seconds}.flac", music[:seconds * SR], SR)
        argv = [str(Path(sys.executable).with_name("diffroll")), "transcribe", str(tmp_path / f"{seconds}.flac"),
                "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt), "--steps", "2", "--threads", "1", "--notes-csv"]
        proc = subprocess.run([sys.executable, "-c", PEAK_OF_CLI, *argv], capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        peaks[seconds] = int(proc.stdout.strip().splitlines()[-1])
    assert len(read_csv(tmp_path / "out" / "240.csv")[1]) > 240  # notes were read all along
    assert min(peaks.values()) > 100, peaks  # the child was measured (torch alone takes more)
    assert abs(peaks[240] - peaks[30]) <= 5, peaks


def test_the_transcribing_cli_does_not_load_the_training_stack():
    """Start-up counts against every `diffroll transcribe`: the trainer's data stack loads only for `train`."""
    code = ("import sys, diffroll.cli.commands; "
            "print(sorted(m for m in ('datasets', 'pandas', 'diffroll.cli.train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
