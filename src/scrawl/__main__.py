"""`python -m scrawl` is the same as the `scrawl` command."""

from .cli import main

raise SystemExit(main())
