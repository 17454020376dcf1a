"""Entry point for ``python -m dualpath_twin``."""

from dualpath_twin.cli import main

if __name__ == "__main__":
    main()
