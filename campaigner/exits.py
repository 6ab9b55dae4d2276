"""How a failed command ends: every exception becomes one message on stderr (and with
``--json`` one JSON object on stdout) and an exit code, never a traceback.

Exit codes: 0 every row sent (or would be); 3 finished but some rows were not;
1 the run could not happen or was aborted; 2 usage error; 130/143 stopped by a signal.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from campaigner.display import echo
from campaigner.errors import CampaignerError, meaningful_leaf, storage_problem

__all__ = (
    "EXIT_ABORTED",
    "EXIT_BROKEN_PIPE",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Interrupted",
    "Stage",
    "explain",
    "fail",
    "handle_errors",
    "terminate",
)

EXIT_OK, EXIT_ABORTED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141
F = TypeVar("F", bound=Callable[..., Any])


def fail(
    message: str,
    code: int = EXIT_ABORTED,
    *,
    as_json: bool = False,
    details: Mapping[str, Any] | None = None,
) -> NoReturn:
    """One line on stderr; with ``--json`` also one JSON object on stdout; then exit."""
    echo(f"error: {message}", err=True)
    if as_json:
        obj = {**(details or {}), "error": message, "exit_code": code}
        click.echo(json.dumps(obj, default=str))
    sys.exit(code)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM while no graceful stop is set up (the send pool and the report
    rebuild have their own). A KeyboardInterrupt, so that whatever lets Ctrl-C through
    (anyio, asyncio, ``except Exception``) lets SIGTERM through too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def terminate(signum: int, frame: object) -> None:
    raise Interrupted(signum)


class Stage:
    """What an interrupt outside the send means for the user; the send command updates it."""

    after_stop = "nothing was sent"


def explain(exc: BaseException, where: object = None) -> tuple[str, int, dict[str, Any]]:
    """The one place that turns an exception into (message, exit code, JSON details).

    ``where`` is the folder the command writes to, named when the OS does not say which
    file failed (polars' writers do not)."""
    if isinstance(exc, CampaignerError):
        return str(exc), exc.exit_code, exc.details
    if isinstance(exc, click.exceptions.Abort):  # a question answered with Ctrl-C or Ctrl-D
        interrupt = exc.__context__
        if isinstance(interrupt, KeyboardInterrupt):
            return explain(interrupt, where)
        return f"no answer to the question; {Stage.after_stop}", EXIT_ABORTED, {}
    if isinstance(exc, KeyboardInterrupt):
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        return f"stopped by {name}; {Stage.after_stop}", 128 + signum, {}
    problem = storage_problem(exc)
    if problem is not None:
        message = f"{problem.describe(where)}; {Stage.after_stop}; {problem.remedy}, then try again"
        return message, EXIT_ABORTED, {}
    # A bug: say so plainly, keep the traceback for -v / logs.
    logging.getLogger("campaigner").debug("unexpected error", exc_info=exc)
    return (
        f"unexpected internal error ({type(exc).__name__}: {exc}); nothing was lost: "
        "the report and journal in the run folder are intact. Please report this bug.",
        EXIT_ABORTED,
        {},
    )


def handle_errors(func: F) -> F:
    """Map every exception to one message and an exit code, once: never a traceback.

    Exception groups from anyio task groups are unwrapped to the leaf that explains them.
    With ``--json``, stdout gets one JSON object: the error, the exit code and whatever
    the error knows about the run (run_dir, counts).
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BaseException as exc:
            leaf = meaningful_leaf(exc)
            if isinstance(leaf, click.exceptions.Exit | click.ClickException | SystemExit):
                raise leaf from None
            if isinstance(leaf, BrokenPipeError):
                # The reader went away (`| head`): the run itself is complete, so exit quietly.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(EXIT_BROKEN_PIPE)
            message, code, details = explain(leaf, kwargs.get("out") or kwargs.get("run_dir"))
            fail(message, code, as_json=as_json, details=details)

    return wrapper  # type: ignore[return-value]
