"""The files of the ``diffroll`` command: which inputs, which outputs, checked before any work;
outputs written atomically (a temporary file, named only when all of an input's outputs are done)."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..core.audio import AUDIO_EXTENSIONS
from ..transcription.outputs import SONIFY_RATE, default_soundfont
from .messages import CliError, UsageError

def collect_inputs(inputs: list[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(audio file, output name relative to OUTDIR) for each input, and one error per bad input.

    A folder contributes its audio files (recursively, by extension), named by their path inside
    the folder; a file is taken as given, whatever its extension (libsndfile decides).
    """
    jobs, errors = [], []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder has no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            jobs += [(p, p.relative_to(path).with_suffix(".mid")) for p in found]
        elif path.is_file():
            jobs.append((path, Path(path.with_suffix(".mid").name)))
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors


def output_paths(midi: Path, args) -> dict[str, Path]:
    """The files written for one transcription: the MIDI, and the CSV / sonified WAV next to it."""
    out = {"midi": midi}
    if args.notes_csv:
        out["csv"] = midi.with_suffix(".csv")
    if args.sonify:
        out["wav"] = midi.with_suffix(".sonified.wav")
    return out


def check_output_folder(folder: Path, what: str = "output folder") -> None:
    """UsageError naming ``folder`` unless it is a writable folder or can be created as one (its
    nearest existing ancestor is a writable folder). Creates nothing."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise UsageError(f"{what} {folder} is not a folder{where}: give a folder with -o")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError("permission denied")
    except OSError as err:
        raise UsageError(f"{what} {folder} is not writable ({existing}: {err.strerror or err}): "
                         "choose another folder with -o") from err


STDIO = "-"


def check_not_stdio(path: Path, what: str) -> None:
    """UsageError for ``-``: audio is read from files (streamed, with seeks), not from a pipe."""
    if str(path) == STDIO:
        raise UsageError(f"{what} '-': standard input and output are not supported: save the audio to a file "
                         "and give its path (e.g. `ffmpeg -i URL in.wav`), and write to a file with -o")


def check_output_file(path: Path) -> None:
    """UsageError unless ``path`` can be a file written in a writable folder."""
    check_not_stdio(path, "-o")
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder: give the MIDI file to write, e.g. {path / 'out.mid'}")
    check_output_folder(path.parent, f"the folder of -o {path},")


def existing_outputs(paths: dict[str, Path], overwrite: bool) -> list[Path]:
    """The outputs that exist and would be replaced (none when ``overwrite``)."""
    return [] if overwrite else [p for p in paths.values() if p.exists() or p.is_symlink()]


def _refusal(existing: list[Path]) -> str:
    names = ", ".join(str(p) for p in existing)
    return f"{names} already exist{'s' if len(existing) == 1 else ''}: not overwritten (pass --overwrite to replace)"


def _check_sonify(args) -> None:
    """A usage error for a soundfont that is not there, before any work (FluidSynth is checked too)."""
    if not getattr(args, "sonify", False):
        return
    from ..corpus.render import PianoSynth, RenderError, soundfont_path  # only --sonify pays for their import

    args.soundfont = args.soundfont or default_soundfont()
    try:
        soundfont_path(args.soundfont)
    except RenderError as err:
        raise UsageError(f"--soundfont: {err}") from err
    try:
        PianoSynth(args.soundfont, SONIFY_RATE).close()  # FluidSynth itself, and the soundfont loads
    except RenderError as err:
        raise CliError(f"--sonify: {err}") from err


TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")  # .NAME.PID.tmp: an output being written by process PID


def _temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or not a pid): leave its files alone
    return True


def remove_stale_temps(folders) -> list[Path]:
    """Remove the temporary outputs (``.NAME.PID.tmp``) that processes no longer running left in
    ``folders`` (a run killed while writing); returns them."""
    removed = []
    for folder in {Path(f) for f in folders}:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            m = TEMP.match(entry.name)
            if m and int(m[1]) != os.getpid() and entry.is_file() and not _alive(int(m[1])):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _taken(path: Path) -> CliError:
    return CliError(f"{path} was written by another run meanwhile: not overwritten (pass --overwrite to replace, "
                    "or write to another folder with -o)")


def _claim(tmp: Path, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` only if no file has it: a hard link fails when
    the name exists, so a run that wrote ``path`` meanwhile is never replaced (where the file system
    has no hard links: an exclusive create, then a copy)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise _taken(path) from None
    except OSError:
        pass
    try:
        with open(tmp, "rb") as src, open(path, "xb") as dst:
            shutil.copyfileobj(src, dst)
    except FileExistsError:
        raise _taken(path) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_outputs(result, paths: dict[str, Path], soundfont: str | None = None, overwrite: bool = False) -> None:
    """The MIDI (and CSV, WAV) of a :class:`~diffroll.transcription.pipeline.Transcription`, each written to a
    temporary file; given their names only when all are written, so a failure leaves none of
    them. Without ``overwrite`` a name that exists by then (another run) fails this input, and the
    outputs of it already named are removed."""
    temps = {kind: _temp_of(p) for kind, p in paths.items()}
    named: list[Path] = []
    try:
        for kind, tmp in temps.items():
            tmp.parent.mkdir(parents=True, exist_ok=True)
            if kind == "midi":
                result.write_midi(tmp)
            elif kind == "csv":
                result.write_csv(tmp)
            else:
                result.sonify(tmp, soundfont)
        for kind, tmp in temps.items():
            if overwrite:
                os.replace(tmp, paths[kind])
            else:
                _claim(tmp, paths[kind])
                named.append(paths[kind])
    except BaseException:
        for path in named:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
