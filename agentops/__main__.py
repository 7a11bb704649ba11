"""``python -m agentops doctor``: the ``agentops`` command without the console script."""

import sys

from agentops.cli import main

if __name__ == "__main__":
    sys.exit(main())
