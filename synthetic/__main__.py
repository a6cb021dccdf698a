"""``python -m synthetic mc ...``: the ``certkit mc`` commands without the plugin mechanism."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
