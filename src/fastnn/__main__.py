"""``python -m fastnn``: the fastnn command (train, bench, check)."""
from .cli import main

raise SystemExit(main())
