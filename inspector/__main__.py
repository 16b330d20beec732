"""`python -m inspector` is the `inspector` command."""

import sys

from inspector.cli import main

sys.exit(main())
