"""python -m pyengine ... = the `pyengine` command (see pyengine/cli.py)."""
import sys

from .cli import main

sys.exit(main())
