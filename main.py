"""Help desk: the GUI by default, subcommands for scripting (see README)."""

import sys

from helpdesk.cli import main

if __name__ == "__main__":
    sys.exit(main())
