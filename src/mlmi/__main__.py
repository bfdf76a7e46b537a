"""``python -m mlmi``: the same command line as the ``mlmi`` script."""
import sys

from mlmi.cli import main

sys.exit(main())
