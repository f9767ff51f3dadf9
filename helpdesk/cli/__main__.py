"""``python -m helpdesk.cli``: the same as ``python main.py`` and the ``helpdesk`` script."""

import sys

from helpdesk.cli import main

sys.exit(main())
