"""A content-addressed archive of every policy bundle that decided.

A decision record names its policies by id and its bundle by SHA-256
(``policy_version.sha256``). Months later the policies directory has moved
on, so the record alone cannot show *what* those policies said. The archive
keeps each bundle version, by that same SHA-256, as it was loaded::

    <state_dir>/bundles/<sha256>/
        version.json      {"sha256", "commit", "dirty", "label", "archived_at"}
        policies.json     {"<@id>": {"id", "effect", "file", "reason", "advice",
                                     "is_template", "text"}}
        files/...         every file of the bundle, byte for byte (Bundle.files)

Why a directory and not a table of the decision log: the log's store protocol
is shared by several backends, and a bundle is a handful of files that
``load_bundle`` reads as they are, so an archived version can be loaded again
exactly as the PDP loaded it (for replay) with no other code. A version is
written once, into a temporary directory that is renamed into place, so a
reader sees all of it or none of it; two PDPs sharing a state directory can
both write the same version safely. The name is checked on every load: the
files must hash to it, or the archive is refused as tampered.

The policy ``text`` is the policy's own source, cut out of its file (with the
comment lines just above it): what its author wrote and reviewed. Where that
cannot be done the text is Cedar's rendering of the parsed policy instead.
The whole files are kept beside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import cedarpy
import orjson
from cedarpy import pst

from pdp.engine.bundle import Bundle, BundleVersion, PolicyInfo, load_bundle
from pdp.engine.problems import BundleInvalid

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CACHE_SIZE = 8


class ArchiveError(Exception):
    """The archive cannot give this bundle version (missing, unreadable or tampered)."""


@dataclass(frozen=True, slots=True)
class ArchivedPolicy:
    """One policy as it was in an archived bundle version."""

    id: str
    effect: str
    file: str
    reason: str
    advice: str | None
    is_template: bool
    text: str | None

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy cost seconds per 10,000 policies.
        return {name: getattr(self, name) for name in self.__slots__}


def archive_dir(state_dir: Path) -> Path:
    """Where the PDP keeps its bundle archive: ``<state_dir>/bundles``."""
    return Path(state_dir) / "bundles"


def policy_texts(bundle: Bundle) -> dict[str, str | None]:
    """Each policy's text by ``@id``: its source in its file, else Cedar's rendering."""
    out: dict[str, str | None] = {}
    by_file: dict[str, list[PolicyInfo]] = {}
    for info in bundle.policies.values():
        by_file.setdefault(info.file, []).append(info)
    for name, infos in by_file.items():
        try:
            chunks = split_policies(bundle.files[name].decode("utf-8"))
        except (KeyError, UnicodeDecodeError):
            chunks = []
        # Cedar parsed this file when the bundle loaded and numbered its policies
        # policy0, policy1, ... in order; when the split finds as many policies as the
        # file holds, chunk N is policy N. Checking that once per file, not by parsing
        # each chunk again, is what keeps archiving 10,000 policies under a second.
        if len(chunks) != len(infos):
            chunks = []
        for info in infos:
            out[info.id] = _source_text(info, chunks) or policy_text(info)
    return out


def split_policies(text: str) -> list[str]:
    """The source of each policy (or template) of a Cedar file, in order, each with the
    comments and blank lines before it.

    Cedar policies end with ``;``, which appears nowhere else outside string
    literals and ``//`` comments, so a short scan finds the ends.
    """
    chunks: list[str] = []
    start = 0
    for token in _CEDAR_TOKEN.finditer(text):  # a string, a comment, or a policy's end
        if token.group() == ";":
            chunks.append(text[start:token.end()])
            start = token.end()
    return chunks


# A string literal (to its closing quote, escapes skipped; an unterminated one runs to the
# end), a `//` comment, or `;`: scanning with it is what the character loop did, in C.
_CEDAR_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|//[^\n]*|;', re.DOTALL)


def _source_text(info: PolicyInfo, chunks: list[str]) -> str | None:
    # The parser numbers a file's policies policy0, policy1, ... in order of appearance;
    # the caller passes chunks only when their count matches the file's policies.
    # Read without making the node (a load on cached facts makes it on first use).
    index = info.lazy_node.cedar_id.removeprefix("policy")
    if not index.isdigit() or int(index) >= len(chunks):
        return None
    chunk = chunks[int(index)].lstrip()
    policy_id = info.annotations.get("id")
    if policy_id is not None and json.dumps(policy_id, ensure_ascii=False)[1:-1] not in chunk:
        return None  # not the policy it should be (the split disagreed with Cedar)
    return chunk + "\n"


def policy_text(info: PolicyInfo) -> str | None:
    """Cedar's rendering of one parsed policy, formatted; None if Cedar cannot render it."""
    node = dataclasses.replace(info.node, id="policy0")
    group = {"policy0": node}
    one = pst.PolicySet(templates=group if info.is_template else {},
                        static_policies={} if info.is_template else group, template_links=())
    try:
        text = str(cedarpy.PolicySet.from_pst(one))
        if not text.strip():  # Cedar does not render templates
            return None
        try:
            text = cedarpy.format_policies(text, 80, 2)
        except ValueError:
            pass  # unformatted text is still the policy
        return text.rstrip("\n") + "\n"
    except (ValueError, TypeError):
        return None


class BundleArchive:
    """Every bundle version the PDP loaded, by SHA-256; see the module docstring.

    Thread-safe. Loaded bundles are cached (a few versions), so replaying many
    decisions of one version parses it once.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._bundles: OrderedDict[str, Bundle] = OrderedDict()
        self._known: set[str] = set()

    # -- writing --------------------------------------------------------------

    def store(self, bundle: Bundle) -> bool:
        """Archive ``bundle`` under its SHA-256; True if written now, False if already there."""
        sha = bundle.version.sha256
        _check_sha(sha)
        if sha in self._known or (self.root / sha).is_dir():
            self._known.add(sha)
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{sha[:12]}-", dir=self.root))
        try:
            (tmp / "files").mkdir()
            directories = {tmp, tmp / "files"}
            for name, data in bundle.files.items():
                target = tmp / "files" / _safe_relative(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                directories.add(target.parent)
                _write(target, data)
            texts = policy_texts(bundle)
            policies = {pid: ArchivedPolicy(
                id=pid, effect=info.effect, file=info.file, reason=info.reason,
                advice=info.advice, is_template=info.is_template,
                text=texts.get(pid)).as_dict() for pid, info in bundle.policies.items()}
            _write(tmp / "policies.json", _json(policies))
            meta = {**bundle.version.as_dict(),
                    "archived_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
            _write(tmp / "version.json", _json(meta))
            for directory in directories:
                _fsync_dir(directory)
            try:
                os.rename(tmp, self.root / sha)
            except OSError:
                if not (self.root / sha).is_dir():  # not a lost race with another writer
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                self._known.add(sha)
                return False
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._known.add(sha)
        return True

    def store_quietly(self, bundle: Bundle | None) -> None:
        """:meth:`store`, logging (not raising) a failure: for bundle-store listeners."""
        if bundle is None:
            return
        try:
            self.store(bundle)
        except (OSError, ValueError, ArchiveError) as e:
            log.error("could not archive bundle %s: %s", bundle.version.label, e)

    # -- reading --------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        return bool(_SHA256.fullmatch(sha256 or "")) and (self.root / sha256).is_dir()

    def versions(self) -> list[dict[str, Any]]:
        """Every archived version's ``version.json``, oldest archived first."""
        out = []
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if _SHA256.fullmatch(entry.name) and (entry / "version.json").is_file():
                    out.append(json.loads((entry / "version.json").read_text()))
        return sorted(out, key=lambda v: v.get("archived_at") or "")

    def version(self, sha256: str) -> dict[str, Any]:
        version: dict[str, Any] = json.loads(self._read(sha256, "version.json"))
        return version

    def policies(self, sha256: str) -> dict[str, ArchivedPolicy]:
        """The policies of an archived version, by ``@id`` (texts as at that time)."""
        raw = json.loads(self._read(sha256, "policies.json"))
        return {pid: ArchivedPolicy(**value) for pid, value in raw.items()}

    def files(self, sha256: str) -> dict[str, bytes]:
        """Every file of an archived version, by path relative to the bundle."""
        base = self._dir(sha256) / "files"
        return {p.relative_to(base).as_posix(): p.read_bytes()
                for p in sorted(base.rglob("*")) if p.is_file()}

    def load(self, sha256: str) -> Bundle:
        """The archived version loaded again as a ``Bundle`` (its recorded version kept).

        Raises :class:`ArchiveError` when it is missing, does not load, or its
        files no longer hash to ``sha256`` (tampered).
        """
        with self._lock:
            if sha256 in self._bundles:
                self._bundles.move_to_end(sha256)
                return self._bundles[sha256]
        directory = self._dir(sha256) / "files"
        try:
            bundle = load_bundle(directory)
        except BundleInvalid as e:
            raise ArchiveError(f"archived bundle {sha256[:12]} does not load: {e}") from e
        if bundle.version.sha256 != sha256:
            raise ArchiveError(f"archived bundle {sha256[:12]} was altered: its files hash to "
                               f"{bundle.version.sha256[:12]}")
        recorded = self.version(sha256)
        bundle = dataclasses.replace(bundle, version=BundleVersion(
            sha256=sha256, commit=recorded.get("commit"), dirty=bool(recorded.get("dirty"))))
        with self._lock:
            self._bundles[sha256] = bundle
            while len(self._bundles) > _CACHE_SIZE:
                self._bundles.popitem(last=False)
        return bundle

    def bundle_for(self, sha256: str | None, current: Bundle | None = None) -> Bundle:
        """The bundle of version ``sha256``: ``current`` when it is that version, else the
        archive."""
        if sha256 is None:
            raise ArchiveError("the record names no policy version")
        if current is not None and current.version.sha256 == sha256:
            return current
        return self.load(sha256)

    def _dir(self, sha256: str) -> Path:
        _check_sha(sha256)
        directory = self.root / sha256
        if not directory.is_dir():
            raise ArchiveError(f"bundle version {sha256[:12]} is not in the archive {self.root}")
        return directory

    def _read(self, sha256: str, name: str) -> str:
        try:
            return (self._dir(sha256) / name).read_text()
        except OSError as e:
            raise ArchiveError(f"archived bundle {sha256[:12]}: cannot read {name}: {e}") from e


def _check_sha(sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ArchiveError(f"not a bundle SHA-256: {sha256!r}")


def _safe_relative(name: str) -> Path:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArchiveError(f"refusing to archive a file outside the bundle: {name!r}")
    return Path(*path.parts)


def _json(value: Any) -> bytes:
    """``json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)`` and a newline,
    the same bytes, by orjson: the standard library's indenting encoder is written in
    Python (0.1 s of a 10,000-policy start for ``policies.json``, against 0.01 s)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["ArchiveError", "ArchivedPolicy", "BundleArchive", "archive_dir", "policy_text",
           "policy_texts", "split_policies"]
