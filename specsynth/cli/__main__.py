"""``python -m specsynth.cli``: the ``specsynth`` command."""
import sys

from . import main

sys.exit(main())
