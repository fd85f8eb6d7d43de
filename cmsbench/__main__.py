"""``python -m cmsbench`` = the ``cmsbench`` command."""

import sys

from cmsbench.cli import main

sys.exit(main())
