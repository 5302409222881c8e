"""``python -m diffroll ...`` (and ``torchrun -m diffroll train ...``): the ``diffroll`` command."""
import sys

from .cli import main

sys.exit(main())
