"""``python -m fusplan``: the same command line as ``fusplan``."""
import sys

from .cli import main

sys.exit(main())
