"""Where a bundle comes from: a directory, or a git repository and ref.

A source brings itself up to date (``fetch``) and names the directory to load;
``fingerprint`` is a cheap "did anything change?" for the watcher
(:mod:`pdp.engine.bundle_watch` says when to ask). A git
source checks each commit out into its own worktree, so the loaded bundle's
version is that exact commit, and an old worktree stays intact while a
decision may still be reading the bundle loaded from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

KEEP_WORKTREES = 3


class SourceError(Exception):
    """The source could not be brought up to date (the last good bundle keeps serving)."""


class BundleSource(Protocol):
    label: str

    def fetch(self) -> Path:
        """Bring the source up to date and return the directory to load (raises SourceError)."""
        ...

    def fingerprint(self) -> Hashable:
        """Changes whenever ``fetch`` would give something new."""
        ...


class DirectorySource:
    """A bundle directory on disk (the default: ``./policies``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.label = str(self.directory)

    def fetch(self) -> Path:
        return self.directory

    def fingerprint(self) -> Hashable:
        entries = []
        for base in (self.directory, self.directory / "tests"):
            try:
                for p in base.iterdir():
                    if p.is_file():
                        st = p.stat()
                        entries.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                continue
        return tuple(sorted(entries))


class GitSource:
    """A bundle at ``subdir`` of a git repository (local path or URL), following ``ref``.

    The repository is cloned once into ``cache_dir``; each fetch pins the ref's
    current commit and checks it out as a detached worktree named by the commit.
    """

    def __init__(self, url: str, *, ref: str = "main", subdir: str = "",
                 cache_dir: Path) -> None:
        self.url, self.ref, self.subdir = url, ref, subdir.strip("/")
        key = hashlib.sha256(f"{url}\0{ref}".encode()).hexdigest()[:16]
        self.root = Path(cache_dir) / key
        self.repo = self.root / "repo.git"
        self.label = f"{url}@{ref}" + (f":{self.subdir}" if self.subdir else "")
        self.commit: str | None = None

    def fetch(self) -> Path:
        commit = self._fetch_commit()
        worktree = self.root / "worktrees" / commit
        if not worktree.exists():
            self._git("worktree", "add", "--detach", "--force", str(worktree), commit)
            self._prune(keep=commit)
        self.commit = commit
        directory = worktree / self.subdir if self.subdir else worktree
        if not directory.is_dir():
            raise SourceError(
                f"{self.label}: commit {commit[:12]} has no directory {self.subdir!r}")
        return directory

    def fingerprint(self) -> Hashable:
        try:
            return self._fetch_commit()
        except SourceError as e:
            return ("error", str(e))

    def _fetch_commit(self) -> str:
        if not self.repo.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self._run(["git", "clone", "--bare", "--quiet", self.url, str(self.repo)])
        self._git("fetch", "--quiet", "--force", "origin", f"+{self.ref}:refs/pdp/tracked")
        return self._git("rev-parse", "refs/pdp/tracked^{commit}").strip()

    def _prune(self, keep: str) -> None:
        """Drop all but the newest worktrees (the one just made included)."""
        base = self.root / "worktrees"
        trees = sorted((p for p in base.iterdir() if p.is_dir()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for old in trees[KEEP_WORKTREES:]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        self._git("worktree", "prune")

    def _git(self, *args: str) -> str:
        return self._run(["git", "--git-dir", str(self.repo), *args])

    def _run(self, command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                  env={"GIT_TERMINAL_PROMPT": "0", "PATH": _path()})
        except (OSError, subprocess.SubprocessError) as e:
            raise SourceError(f"{self.label}: {' '.join(command[:3])}: {e}") from e
        if done.returncode != 0:
            raise SourceError(f"{self.label}: {' '.join(command[1:4])} failed: "
                              f"{done.stderr.strip() or done.stdout.strip()}")
        return done.stdout


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")
