"""Bundles from git: new commits go live without restart, broken ones are refused."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from pdp.engine.sources import GitSource
from pdp.engine.store import BundleStore
from tests.conftest import POLICIES
from tests.server import run_cli, start_server


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repository whose `bundle/` directory is the example bundle, on branch main."""
    repo = tmp_path / "origin"
    shutil.copytree(POLICIES, repo / "bundle")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first bundle")
    return repo


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / "bundle" / name).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


NEW_POLICY = ('@id("dataset.pipelines.read-ledger")\n@reason("Pipelines read the ledger.")\n'
              'permit (principal in Pdp::Group::"pipelines", action == App::Action::"read", '
              'resource == App::Dataset::"ledger");\n')


def test_the_bundle_version_is_the_commit_and_new_commits_load(origin: Path, tmp_path: Path) -> None:
    store = BundleStore(GitSource(str(origin), ref="main", subdir="bundle",
                                  cache_dir=tmp_path / "cache"))
    first = store.load_initial()
    assert first.version.commit == git(origin, "rev-parse", "HEAD") and not first.version.dirty
    second_commit = commit_file(origin, "extra.cedar", NEW_POLICY, "add ledger read")
    outcome = store.reload()
    assert outcome.ok and outcome.changed
    assert store.current.version.commit == second_commit
    assert "dataset.pipelines.read-ledger" in store.current.policies


def test_a_broken_commit_is_refused_and_the_previous_one_keeps_serving(origin: Path, tmp_path: Path) -> None:
    store = BundleStore(GitSource(str(origin), ref="main", subdir="bundle",
                                  cache_dir=tmp_path / "cache"))
    good = store.load_initial()
    commit_file(origin, "broken.cedar", "permit(", "a broken policy")
    outcome = store.reload()
    assert not outcome.ok and any("broken.cedar" in p for p in outcome.problems)
    assert store.current is good and store.last_error is not None


def test_an_unreachable_repository_is_reported_not_fatal(origin: Path, tmp_path: Path) -> None:
    store = BundleStore(GitSource(str(origin), ref="main", subdir="bundle",
                                  cache_dir=tmp_path / "cache"))
    good = store.load_initial()
    shutil.rmtree(origin)
    outcome = store.reload()
    assert not outcome.ok and store.current is good


def test_a_served_git_bundle_switches_commits_under_load_without_losing_a_request(
        origin: Path, tmp_path: Path) -> None:
    config = tmp_path / "pdp.toml"
    config.write_text(f'[policies_git]\nurl = "{origin}"\nref = "main"\nsubdir = "bundle"\n'
                      f'poll_s = 0.2\n')
    server = start_server(["--dev", "--config", str(config)], cwd=tmp_path)
    try:
        # A pipeline, not an agent: the adaptive guards lock out agents that burst denies.
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        "--ttl", "10m", cwd=tmp_path).stdout.strip()
        body = {"subject": {"token": token}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "ledger"}}
        results: list[tuple[int, str, str]] = []
        explanations: dict[str, str] = {}
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not stop.is_set():
                    r = client.post("/v1/authorize", json=body)
                    d = r.json()
                    commit = (d.get("policy_version") or {}).get("commit", "")
                    results.append((r.status_code, d.get("decision", "?"), commit))
                    explanations[commit] = d.get("explanation", "")

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        new_commit = commit_file(origin, "extra.cedar", NEW_POLICY, "analysts read the ledger")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(c == new_commit for _, _, c in results[-20:]):
                break
            time.sleep(0.05)
        commit_file(origin, "broken.cedar", "permit(", "broken")
        # Keep the load on until a poll has seen (and refused) the broken commit.
        deadline = time.monotonic() + 60
        ready = httpx.get(f"{server.url}/readyz").json()
        while ready["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = httpx.get(f"{server.url}/readyz").json()
        stop.set()
        for t in threads:
            t.join(timeout=20)
    finally:
        server.stop()
    # The supervisor's log says which commits it loaded or refused, and when: a timeout above
    # is read from it.
    log = server.log.read_text()[-6000:]
    assert results and all(status == 200 for status, _, _ in results), log
    assert all(decision in ("allow", "deny") for _, decision, _ in results)
    commits = [c for _, _, c in results]
    assert commits[0] != new_commit and new_commit in commits, log
    # The new commit allowed the read; the broken commit never replaced it.
    assert {d for _, d, c in results if c == new_commit} == {"allow"}, explanations[new_commit]
    assert ready["status"] == "degraded" and ready["bundle"]["commit"] == new_commit, (ready, log)
