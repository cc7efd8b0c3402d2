"""``python -m speechtok``: the same as the ``speechtok`` command."""

import sys

from speechtok.cli import main

sys.exit(main())
