"""`python build.py` assembles web/dist, `python build.py models` builds the models: the
build itself is the package tools/build (docs/build.md)."""

import sys

from tools.build.command import main

if __name__ == "__main__":
    sys.exit(main())
