"""What is wrong with a bundle, said the way an author fixes it: file, line, own policy id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BundleProblem:
    """One reason a bundle was refused (or a warning): which file and line, which policy, what."""

    file: str
    problem: str
    policy: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.policy:
            where += f": policy {self.policy!r}"
        return f"{where}: {self.problem}"


class BundleInvalid(Exception):
    """The bundle was refused; ``problems`` lists every problem found."""

    def __init__(self, directory: Path, problems: list[BundleProblem]) -> None:
        self.directory = directory
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"bundle {directory} is invalid ({len(problems)} problems):\n{lines}")
