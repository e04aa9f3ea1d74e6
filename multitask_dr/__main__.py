"""``python -m multitask_dr`` is ``multitask-dr``."""

from multitask_dr.cli import main

raise SystemExit(main())
