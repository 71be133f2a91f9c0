"""``python -m distlda``: see :mod:`distlda.cli`."""

from distlda.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
