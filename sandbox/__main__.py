"""``python -m sandbox start|stop|run|status``: same as ``python -m sandbox.server``."""

import sys

from sandbox.server import main

sys.exit(main())
