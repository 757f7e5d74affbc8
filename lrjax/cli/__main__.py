"""``python -m lrjax.cli ...`` is the ``lrjax`` command."""

import sys

from lrjax.cli import main

sys.exit(main())
