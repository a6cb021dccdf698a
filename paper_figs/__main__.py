"""``python -m paper_figs``: list and make the paper's figures."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
