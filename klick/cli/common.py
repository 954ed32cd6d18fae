"""What the subcommands share: the --config option, loading settings, plain-words exits."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from klick.config import Config, ConfigError, load_config
from klick.problems import Problem

#: Exit codes (README): 0 ok, 1 invalid data, 2 usage or config error.
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Settings file to use instead of the usual search ($KLICK_HOME, XDG, /etc/klick).",
)


registry_option = click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Card file to use instead of the one in the settings (paths.registry).",
)


def registry_path_for(config_path: str | None, registry_path: str | None):
    """The card file a command works on: --registry, else paths.registry from the settings."""
    from pathlib import Path

    if registry_path:
        return Path(registry_path)
    return get_config(config_path).paths.registry


def get_config(config_path: str | None) -> Config:
    """Load settings, or print every problem and exit 2."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        print_problems(exc.problems)
        fail("The settings file has problems; fix the lines above and try again.", EXIT_USAGE)


def print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


#: Files SQLite keeps beside a database: replacing one of them loses or damages the database.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def out_file(out: str, keep: Iterable[tuple[Path | None, str]] = ()) -> Path:
    """The file an ``--out`` option names, or exit 2 with why Klick will not write there.

    ``keep`` pairs the files this command must never replace with how to name them ("the
    database being exported"); the files SQLite keeps beside each count as that file. A missing
    folder is not made (a typo would make folders anywhere), and only a plain file is replaced:
    as root, a rename onto /dev/null would replace the system's /dev/null.
    """
    import os

    from klick.atomic import NotAPlainFile, check_replaceable

    target = Path(out)
    folder = target.parent
    if not folder.is_dir():
        fail(f"--out {out}: the folder {folder} does not exist; make it first, or write somewhere else.", EXIT_USAGE)
    try:
        check_replaceable(target)
    except NotAPlainFile:
        fail(f"--out {out} is not a plain file (a device, a pipe or a folder); give the name of a file to write.", EXIT_USAGE)
    real = os.path.realpath(target)
    for path, what in keep:
        if path is None:
            continue
        mine = os.path.realpath(path)
        if real == mine:
            fail(f"--out {out} is {what}; choose another file name.", EXIT_USAGE)
        for suffix in SQLITE_COMPANIONS:
            if real == mine + suffix:
                fail(
                    f"--out {out} is part of {what} (SQLite keeps it beside {Path(path).name}); choose another file name.",
                    EXIT_USAGE,
                )
    return target


def plain_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn unexpected OS errors into one sentence and exit 1: a carer never sees a traceback."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            # `klick export usage | head`: the reader stopped listening, which is no error of the disk.
            # Python would complain again when it flushes stdout at exit, so stdout goes nowhere now.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_INVALID)
        except PermissionError as exc:
            fail(f"Klick may not use {exc.filename or 'a file'}: permission denied. Ask the installer to check its owner.")
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"Something went wrong on the disk{where}: {exc.strerror or exc}.")

    return wrapper
