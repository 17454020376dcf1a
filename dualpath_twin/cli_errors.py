"""How every CLI command (core, store and planning) turns user errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# Exception class names treated as user errors wherever they are defined; matching by name keeps
# the CLI decoupled from the packages that raise them.
USER_ERROR_NAMES = frozenset(
    {"ScenarioError", "CatalogError", "WorkloadError", "StoreError", "ReportError", "CheckError", "PlanningError"}
)


def is_user_error(exc: BaseException) -> bool:
    """True for errors a user can fix (bad scenario, trace, check, missing file), not bugs."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError):
        return True
    return any(c.__name__ in USER_ERROR_NAMES for c in type(exc).__mro__)


def die(message: str, code: int = EXIT_USER_ERROR) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def guard() -> Iterator[None]:
    """Turn user errors into a clear stderr message and exit code 2, Ctrl-C into exit 130."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - filtered below, others re-raised
        if is_user_error(exc):
            die(str(exc))
        raise
