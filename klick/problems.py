"""Problems found in a file the people around Klick edit, each with the line it is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Problem", "FileProblems", "errors_in"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a look) in one file, at one line.

    ``line`` is 1-based, as an editor shows it; ``None`` when the problem is the whole file.
    """

    file: str
    line: int | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}: {tag}{self.message}"


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


class FileProblems(Exception):
    """Raised when a file cannot be used. ``problems`` holds every reason, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
