"""``python -m gui``: open the live monitor."""

import sys

from .app import main

sys.exit(main())
