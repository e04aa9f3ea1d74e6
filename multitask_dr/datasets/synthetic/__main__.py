"""``python -m multitask_dr.datasets.synthetic``: write both synthetic datasets."""

import sys

from multitask_dr.datasets.synthetic.cli import main

sys.exit(main())
