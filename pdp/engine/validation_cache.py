"""Remember which policy files Cedar's validator accepted, so that a restart skips it.

Validating 10,000 policies against the schema is the largest single piece of a start
after the imports (about a third of :func:`pdp.engine.bundle.load_bundle`'s CPU:
bench/RESULTS.md). Its verdict is a pure function of what it reads: the policy file's
text, the schema text it is checked against (the bundle's merged with the ``Pdp``
namespace, :mod:`pdp.engine.pdp_schema`), and the validator (cedarpy's build). A
``pdp serve`` that restarts on the same bundle, and a reload in which only
``entities.json`` or the tests changed, validate text that already passed.

How it works: when Cedar's strict validation of a file *passes*, a marker named by the
SHA-256 of :func:`verdict_key`'s inputs is written under ``<state_dir>/validated/``;
a later load that computes the same digest skips the validator for that file. Only
passes are kept: a failing file is validated again, so its errors are always Cedar's
own and complete. ``pdp validate`` never reads the cache.

Threat model (also in the README, "Validation cache"):

- **Who can make an invalid bundle load through it**: only whoever can write a marker
  whose name is the digest of that very bundle's text and schema. The digest binds the
  marker to every byte validation reads (SHA-256: a marker for one bundle, schema,
  cedarpy build or PDP version never matches another), so a policy author cannot reuse
  an older verdict, and a changed schema, cedarpy or PDP validates again.
- **Where it lives and who is trusted**: in the state directory, which already holds
  what a PDP must be able to trust (the decision log, revocations, grants, signing
  keys). A marker is believed only if it and its directory belong to the PDP's own
  user and are writable by nobody else (as ``ssh`` treats ``~/.ssh``), it is a regular
  file (not a link), and it holds exactly its own name: another local user cannot
  plant one, and a torn write is not a verdict. Whoever *is* the PDP's user (or root)
  can already unrevoke a credential or rewrite the log; the cache gives them nothing
  they lack, so it is on by default (``validation_cache = false`` turns it off).
- **Why no HMAC key beside it**: a key the PDP reads at start lives where its user can
  read it, so the one who could forge a marker could sign it too. It would add a file
  to protect and nothing to the protection.
- **What a planted verdict could do**: load a bundle Cedar's validator would refuse.
  Cedar evaluates such policies as written: one that raises an error is skipped, and
  the PDP denies when a ``forbid`` errored (:mod:`pdp.engine.evaluate`), but a
  mistyped ``forbid`` that simply never matches (an action that does not exist, a
  ``has`` of an attribute the schema lacks) would not forbid. That is why a marker is
  only ever written by this PDP after Cedar's own pass, and believed only under the
  rules above.

Every failure to read or write the cache (a read-only state directory, a full disk, a
marker owned by someone else) means "not cached": the file is validated as without it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import cedarpy

import pdp

VERDICT_FORMAT = b"pdp validation verdict v1"
"""Changes whenever what a verdict means changes, so that old markers stop matching."""
KEEP = 64
"""Markers kept: each load of a changed policy file adds one; the oldest go first."""
DIRECTORY = "validated"
"""The cache's directory under the state directory."""


def cedar_build() -> bytes:
    """Which cedarpy validates: its version and its compiled module's size and mtime, so
    that a rebuilt cedarpy of the same version is not trusted with the old verdicts."""
    from importlib.metadata import version  # imported by the server's start already

    module = Path(cedarpy.__file__).parent
    parts = [version("cedarpy").encode()]
    for library in sorted(module.glob("_internal*")):
        info = library.stat()
        parts.append(f"{library.name}:{info.st_size}:{info.st_mtime_ns}".encode())
    return b"\0".join(parts)


def verdict_key(schema_text: str, policy_text: str, *, validator: bytes) -> str:
    """The SHA-256 (hex) of everything a verdict depends on."""
    return content_key(VERDICT_FORMAT, schema_text, policy_text, build=validator)


def content_key(kind: bytes, schema_text: str, policy_text: str, *, build: bytes) -> str:
    """The SHA-256 (hex) of an entry's kind, the PDP's version, cedarpy's ``build``, the
    schema and the policy text, each part length-prefixed so that no two different
    inputs give the same byte stream."""
    digest = hashlib.sha256()
    for part in (kind, pdp.__version__.encode(), build, schema_text.encode(),
                 policy_text.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class ValidationCache:
    """The verdicts under ``directory`` (``<state_dir>/validated``); see the module."""

    def __init__(self, directory: Path, *, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep
        self._validator: bytes | None = None

    def key(self, schema_text: str, policy_text: str) -> str:
        """:func:`verdict_key` with this process's cedarpy build."""
        if self._validator is None:
            self._validator = cedar_build()
        return verdict_key(schema_text, policy_text, validator=self._validator)

    def passed(self, key: str) -> bool:
        """Whether a trusted marker says the text of ``key`` passed validation."""
        return read_private(self.directory, key, len(key) + 2) == _marker(key)

    def record_pass(self, key: str) -> None:
        """Write the marker of ``key``; quietly nothing when the state directory cannot
        take it."""
        write_private(self.directory, key, _marker(key), keep=self.keep)


def read_private(directory: Path, name: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``directory/name``, or None unless it and its directory
    are this user's, writable by no one else, and it is a regular file (not a link)."""
    try:
        if not _private(os.lstat(directory), directory=True):
            return None
        fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return None
    try:
        if not _private(os.fstat(fd), directory=False):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_private(directory: Path, name: str, data: bytes, *, keep: int) -> None:
    """Write ``directory/name`` atomically (a reader sees it whole or not at all) and keep
    the ``keep`` newest files there; quietly nothing when the directory cannot take it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.lstat(directory), directory=True):
            return  # a directory this PDP would not believe: leave it alone
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temporary, directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(directory, keep)
    except OSError:
        return


def _prune(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest files (and no temporary left by a crash)."""
    entries = [(entry.stat(follow_symlinks=False).st_mtime_ns, entry.path)
               for entry in os.scandir(directory)]
    if len(entries) <= keep:
        return
    for _, path in sorted(entries)[:len(entries) - keep]:
        Path(path).unlink(missing_ok=True)


def _marker(key: str) -> bytes:
    return key.encode() + b"\n"


def _private(info: os.stat_result, *, directory: bool) -> bool:
    """Owned by this process's user, writable by no one else, and of the expected kind
    (a symbolic link is neither)."""
    kind = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    return kind and info.st_uid == os.geteuid() and not info.st_mode & 0o022
