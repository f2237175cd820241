"""`pyengine train` under mpiexec: the command line, unchanged, as each rank runs it."""
import sys

from pyengine.cli import main

sys.exit(main(["train"] + sys.argv[1:]))
