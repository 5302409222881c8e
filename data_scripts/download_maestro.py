#!/usr/bin/env python
"""Download and unpack MAESTRO (Hawthorne et al., ICLR 2019), verifying the archive's SHA-256.

    python data_scripts/download_maestro.py --dest data/            # v3.0.0, audio + MIDI (~101 GB)
    python data_scripts/download_maestro.py --dest data/ --midi-only  # MIDI only (~57 MB), for
                                                                      # unpaired pretraining (§4.2)

Then train with ``dataset="maestro"`` and ``data_path=data/maestro-v3.0.0``. The checksums are
those published for the official archives by third-party loaders; pass ``--sha256`` to use your
own or ``--no-verify`` to skip. MAPS needs a registration and cannot be fetched by a script:
unpack it so that ``<root>/<group>/MUS/MAPS_MUS-*.wav`` exist and use ``dataset="maps"``.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

URL = "https://storage.googleapis.com/magentadata/datasets/maestro/{version}/maestro-{version}{suffix}.zip"
SHA256 = {
    ("v3.0.0", ""): "6680fea5be2339ea15091a249fbd70e49551246ddbd5ca50f1b2352c08c95291",
    ("v3.0.0", "-midi"): "70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
    ("v2.0.0", ""): "572c6054e8d2c7219aa4df9a29357da0f9789524c11fa38cef7d4bd8542c93f0",
    ("v2.0.0", "-midi"): "ec2cc9d94886c6b376db1eaa2b8ad1ce62ff9f0a28b3744782b13163295dadf3",
}
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc="sha256") as bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def download(url: str, target: Path) -> None:
    """Resumable download to ``target`` (a ``.part`` file is continued if present)."""
    part = target.with_name(target.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request) as response:
        if done and response.status != 206:  # the server ignored the range: start again
            done = 0
        total = done + int(response.headers.get("Content-Length", 0))
        with open(part, "ab" if done else "wb") as f, \
                tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=target.name) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    part.replace(target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("data"))
    parser.add_argument("--version", choices=["v3.0.0", "v2.0.0"], default="v3.0.0")
    parser.add_argument("--midi-only", action="store_true")
    parser.add_argument("--sha256", help="expected checksum (default: the known one for this archive)")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--keep-zip", action="store_true")
    args = parser.parse_args(argv)

    suffix = "-midi" if args.midi_only else ""
    url = URL.format(version=args.version, suffix=suffix)
    args.dest.mkdir(parents=True, exist_ok=True)
    archive = args.dest / Path(url).name
    if not archive.exists():
        download(url, archive)
    if not args.no_verify:
        expected = args.sha256 or SHA256[(args.version, suffix)]
        actual = sha256_of(archive)
        if actual != expected:
            print(f"checksum mismatch for {archive}:\n  expected {expected}\n  got      {actual}\n"
                  "delete the file and download again (or pass --sha256 / --no-verify)", file=sys.stderr)
            return 1
    with zipfile.ZipFile(archive) as z:
        for member in tqdm(z.infolist(), desc="unzip"):
            z.extract(member, args.dest)
    root = args.dest / f"maestro-{args.version}"
    from diffroll.corpus.loaders import maestro_metadata  # checks the layout the loaders expect

    print(f"{root}: {len(maestro_metadata(root))} pieces")
    if not args.keep_zip:
        archive.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
