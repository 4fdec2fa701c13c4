"""`pdp serve` and `pdp serve --workers 2`: the supervisor reloads and replaces the
workers (issue 16). One worker is the default, and is supervised too: most tests run
with one worker (no flag: the default) and with two.

Real servers on free ports, under steady traffic (a new connection per request, so that
every worker and every slot's socket takes some). What is attacked: requests during the
switch (none fails, none is lost from the log), the cut-over (after the reload answers,
no new connection reaches an old worker), a refused bundle, a replacement killed while
it starts, the supervisor killed during a rollout, and durable state across the switch.
Which worker answered is read from the decision log (``instance`` is host:pid).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POLICIES
from tests.server import ServerProcess, children, run_cli, start_server

pytestmark = pytest.mark.slow

SRE = "spiffe://example.org/ops/sre-console"  # may reload and revoke (the example bundle)
ETL = "spiffe://example.org/services/etl"
BAD_POLICY = "permit(principal, action, resource) when { bogus };\n"


@dataclass
class Answer:
    sent: float  # monotonic, before the connection was opened
    status: int | None  # None: the request failed (reset, refused, timeout)
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class Traffic:
    """Requests on fresh connections from ``threads`` threads until stopped."""

    def __init__(self, server: ServerProcess, token: str, threads: int = 4) -> None:
        self.url = f"{server.url}/v1/authorize"
        self.body = {"subject": {"token": token}, "action": "read",
                     "resource": {"type": "App::Dataset", "id": "sales-daily"}}
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        # Daemons, and stopped by the ``traffic`` fixture too: a failed test must not
        # leave them running.
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                with httpx.Client(timeout=30) as client:
                    r = client.post(self.url, json=self.body)
                self.answers.append(Answer(sent, r.status_code, r.json()))
            except httpx.HTTPError as e:
                self.answers.append(Answer(sent, None, error=repr(e)))

    def stop(self) -> list[Answer]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        return self.answers


def _records(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT record FROM decisions")]
    return {r["decision_id"]: r for r in rows if r.get("kind") == "decision"}


def _admin_events(db: Path, event: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT record FROM decisions ORDER BY seq")]
    return [r for r in rows if r.get("event") == event]


def _answered_by(db: Path, traffic: Traffic) -> set[int]:
    """The pids of the workers that answered ``traffic`` so far."""
    records = _records(db)
    return {int(records[a.body["decision_id"]]["instance"].rsplit(":", 1)[1])
            for a in list(traffic.answers) if a.status == 200 and a.body["decision_id"] in records}


def _labels(answers: Iterable[Answer]) -> set[str]:
    return {str(a.body["policy_version"]["label"]) for a in answers}


def _children(pid: int) -> set[int]:
    return set(children(pid))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _sha(answer: Answer) -> str:
    return str(answer.body["policy_version"]["sha256"])


def _reload(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/policies/reload", timeout=300,
                      headers={"authorization": f"Bearer {token}"})


def _token(cwd: Path, spiffe_id: str) -> str:
    return run_cli("token", "--spiffe-id", spiffe_id, cwd=cwd).stdout.strip()


def _assert_chain_verifies(workdir: Path) -> None:
    """``pdp audit verify`` on the server's log: every worker's records in one chain."""
    verified = run_cli("audit", "verify", cwd=workdir)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        time.sleep(0.02)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def server(workdir: Path, workers: int) -> Any:
    # Reloads by request only: each test knows what triggered each round (the watcher in
    # the supervisor: tests/api/test_serve_forked_workers.py). One worker: no flag, the
    # default is what is tested.
    server = start_server(["--dev", *(["--workers", str(workers)] if workers > 1 else [])],
                          cwd=workdir, timeout=90, env={"PDP_WATCH_POLICIES": "false"})
    _wait_for(lambda: len(_children(server.process.pid)) == workers, f"{workers} workers")
    yield server
    server.stop()


@pytest.fixture
def traffic() -> Any:
    """``traffic(server, token)`` starts a :class:`Traffic`; each is stopped after the test."""
    started: list[Traffic] = []

    def start(server: ServerProcess, token: str) -> Traffic:
        started.append(Traffic(server, token))
        return started[-1]

    yield start
    for t in started:
        t.stop()


def _ready_workers(server: ServerProcess, token: str, db: Path) -> set[int]:
    """The pids of the workers, once each has answered (rounds of fresh connections)."""
    body = {"subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    seen: set[int] = set()
    for _ in range(100):
        r = httpx.post(f"{server.url}/v1/authorize", json=body, timeout=30).json()
        seen.add(int(_records(db)[r["decision_id"]]["instance"].rsplit(":", 1)[1]))
        if seen == _children(server.process.pid):
            return seen
    raise AssertionError(f"not every worker answered: {seen}")


def test_a_reload_under_traffic_loses_nothing_and_cuts_over_to_the_new_workers(
        workdir: Path, server: ServerProcess, traffic: Any) -> None:
    db = workdir / ".pdp" / "decisions.db"
    token, sre = _token(workdir, ETL), _token(workdir, SRE)
    old_workers = _ready_workers(server, token, db)
    # Durable state: a credential revoked before the switch stays refused after it.
    revoked = _token(workdir, "spiffe://example.org/services/billing")
    r = httpx.post(f"{server.url}/v1/revocations", timeout=30,
                   headers={"authorization": f"Bearer {sre}"},
                   json={"kind": "spiffe_id", "value": "spiffe://example.org/services/billing",
                         "reason": "issue 16: across a reload"})
    assert r.status_code in (200, 201), r.text

    load = traffic(server, token)
    _wait_for(lambda: len(load.answers) >= 20, "traffic before the reload")
    changed = time.monotonic()
    with (workdir / "policies" / "datasets.cedar").open("a") as f:
        f.write("\n// issue 16: a new version, the same decisions\n")
    reloaded = _reload(server, sre)
    switched = time.monotonic()
    assert reloaded.status_code == 200 and reloaded.json()["changed"] is True, reloaded.text
    new_workers = _children(server.process.pid)
    revoked_after = [httpx.post(f"{server.url}/v1/authorize", timeout=30, json={
        **load.body, "subject": {"token": revoked}}).json() for _ in range(8)]
    _wait_for(lambda: sum(a.sent > switched for a in load.answers) >= 40,
              "traffic after the reload")
    answers = load.stop()
    server.stop()

    failed = [a for a in answers if a.status != 200]
    assert not failed, failed[:5]  # no reset, no 5xx, during the whole switch
    assert {a.body["decision"] for a in answers} == {"allow"}
    records = _records(db)
    assert all(a.body["decision_id"] in records for a in answers)  # acknowledged = logged
    before = _labels(a for a in answers if a.sent < changed)
    after = [a for a in answers if a.sent > switched]
    assert len(before) == 1 and reloaded.json()["version"] not in before
    # After the answer, every new connection reached a new worker, with the new bundle.
    assert _labels(after) == {reloaded.json()["version"]}
    instances = {int(records[a.body["decision_id"]]["instance"].rsplit(":", 1)[1])
                 for a in after}
    assert instances <= new_workers and not instances & old_workers, (instances, old_workers)
    assert all(d["reason_codes"] == ["identity.revoked"] for d in revoked_after), revoked_after
    # One audited event, with who asked and the decision that allowed it.
    [event] = _admin_events(db, "bundle.reload")
    assert event["principal"] == SRE
    assert records[event["authorized_by"]]["decision"] == "allow"
    _assert_chain_verifies(workdir)


def test_a_refused_bundle_replaces_nothing_and_every_worker_reports_it(
        workdir: Path, server: ServerProcess, traffic: Any) -> None:
    db = workdir / ".pdp" / "decisions.db"
    token, sre = _token(workdir, ETL), _token(workdir, SRE)
    workers = _ready_workers(server, token, db)
    load = traffic(server, token)
    with (workdir / "policies" / "datasets.cedar").open("a") as f:
        f.write(BAD_POLICY)
    refused = _reload(server, sre)
    assert refused.status_code == 409, refused.text
    assert any("bogus" in e["problem"] for e in refused.json()["errors"])
    assert _children(server.process.pid) == workers  # nothing was replaced
    # Each worker's /readyz (fresh connections reach both) says why.
    ready = [httpx.get(f"{server.url}/readyz", timeout=30).json() for _ in range(16)]
    # A worker restarted now gets the supervisor's bundle, not the refused files, and
    # reports the refusal too.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_children(server.process.pid) - workers) == 1, "a restarted worker")
    restarted = _children(server.process.pid) - workers
    _wait_for(lambda: bool(restarted & _answered_by(db, load)), "the restarted worker answers")
    ready += [httpx.get(f"{server.url}/readyz", timeout=30).json() for _ in range(16)]
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    answers = load.stop()
    assert re.search(r"^pdp_bundle_last_reload_ok 0(\.0)?$", metrics, re.MULTILINE), metrics
    assert all(r["status"] == "degraded" for r in ready), ready
    assert all(any("bogus" in p for p in r["bundle_reload_error"]["problems"]) for r in ready)
    assert answers and all(a.body["decision"] == "allow" for a in answers if a.status == 200)
    # Only the requests on the killed worker's connections may fail (kill -9).
    failed = [a for a in answers if a.status != 200]
    assert len(failed) <= 4, failed
    assert len({_sha(a) for a in answers if a.status == 200}) == 1
    [refusal] = _admin_events(db, "bundle.reload_refused")
    assert refusal["principal"] == SRE


@pytest.mark.parametrize("every_attempt", [False, True], ids=["one-kill", "every-attempt"])
def test_a_replacement_killed_while_it_starts_is_retried_then_given_up(
        workdir: Path, server: ServerProcess, traffic: Any, workers: int,
        every_attempt: bool) -> None:
    """1 kill: the rollout retries and completes. Every attempt of every slot (3 each):
    it gives up, and the old workers keep serving the old bundle."""
    kills = 3 * workers if every_attempt else 1
    db = workdir / ".pdp" / "decisions.db"
    token, sre = _token(workdir, ETL), _token(workdir, SRE)
    known = _ready_workers(server, token, db)
    for _ in range(MISSED_ROLLOUTS + 1):
        load = traffic(server, token)
        with (workdir / "policies" / "datasets.cedar").open("a") as f:
            f.write("\n// issue 16: a new version\n")
        reloaded, killed = _reload_killing_replacements(server, sre, known, kills)
        answers = load.stop()
        if killed == kills or reloaded.status_code != 200:
            break
        # A replacement started and served before the 2 ms poll saw it (the machine was
        # busy): a clean rollout to a new bundle. Try again from it.
        known |= _children(server.process.pid)
    assert killed == kills
    assert answers and all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:5]
    assert all(a.body["decision_id"] in _records(db) for a in answers)
    log = server.log.read_text()
    assert "died while starting (exit -9); retrying" in log
    if not every_attempt:
        assert reloaded.status_code == 200 and reloaded.json()["changed"] is True
    else:
        assert reloaded.status_code == 409, reloaded.text
        assert "died while starting 3 times" in reloaded.text
        assert len({_sha(a) for a in answers}) == 1  # the old bundle throughout
        assert httpx.get(f"{server.url}/readyz", timeout=30).json()["status"] == "degraded"
    assert server.process.poll() is None


MISSED_ROLLOUTS = 4
"""Reloads the kill test may lose to a busy machine (a replacement ready before it was
seen) before it counts as failed."""


def _reload_killing_replacements(server: ServerProcess, sre: str, known: set[int],
                                 kills: int) -> tuple[httpx.Response, int]:
    """Ask for a reload and ``kill -9`` each worker forked after ``known`` (which grows
    by them) as soon as it is seen, up to ``kills``: the answer, and how many died."""
    with ThreadPoolExecutor(1) as pool:
        asked: Future[httpx.Response] = pool.submit(_reload, server, sre)
        killed = 0
        while killed < kills and not asked.done():
            for pid in _children(server.process.pid) - known:
                os.kill(pid, signal.SIGKILL)  # a fresh worker, still starting
                known.add(pid)
                killed += 1
            time.sleep(0.002)
        return asked.result(timeout=300), killed


def _rollout_under_way(workdir: Path, server: ServerProcess,
                       pool: ThreadPoolExecutor) -> tuple[set[int], Future[httpx.Response]]:
    """Change the files and ask for a reload (in ``pool``); once a replacement is forked,
    the workers from before and the request's answer to come."""
    db = workdir / ".pdp" / "decisions.db"
    token, sre = _token(workdir, ETL), _token(workdir, SRE)
    workers = _ready_workers(server, token, db)
    with (workdir / "policies" / "datasets.cedar").open("a") as f:
        f.write("\n// issue 16: a new version\n")
    asked = pool.submit(_reload, server, sre)
    _wait_for(lambda: bool(_children(server.process.pid) - workers), "a replacement forked")
    return workers, asked


def test_kill_9_of_the_supervisor_during_a_rollout_leaves_no_worker_serving(
        workdir: Path, server: ServerProcess) -> None:
    with ThreadPoolExecutor(1) as pool:
        _rollout_under_way(workdir, server, pool)  # answered or not: the supervisor goes
        workers = _children(server.process.pid)
        server.process.kill()
        server.process.wait(timeout=10)
        # Every worker, old and new, notices and stops (drains, closes its log).
        _wait_for(lambda: not any(_alive(p) for p in workers), "the workers stop", timeout=30)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=5)


def test_a_stop_during_a_reload_answers_the_request_and_every_worker_drains(
        workdir: Path, server: ServerProcess) -> None:
    """A reload request holds its worker's drain open; the supervisor answers it when it
    stops, so each worker closes its log instead of being killed after 30 s."""
    with ThreadPoolExecutor(1) as pool:
        workers, asked = _rollout_under_way(workdir, server, pool)
        stopped = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        answer = asked.result(timeout=60)
    took = time.monotonic() - stopped
    log = server.log.read_text()
    assert took < 20, log[-3000:]  # not the 30 s wait and kill
    assert answer.status_code in (200, 409), answer.text
    assert all(f"stopped pid={pid}" in log for pid in workers), log[-2000:]


def test_kill_9_of_a_worker_under_traffic_refuses_no_connection_and_loses_nothing(
        workdir: Path, server: ServerProcess, traffic: Any, workers: int) -> None:
    """The supervisor keeps the slot's socket: while the killed worker's replacement
    starts, new connections wait in its queue instead of being refused. Only requests
    the dead worker had read may fail; every answered one is in the log."""
    db = workdir / ".pdp" / "decisions.db"
    token = _token(workdir, ETL)
    before = _ready_workers(server, token, db)
    load = traffic(server, token)
    _wait_for(lambda: len(load.answers) >= 20, "traffic before the kill")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_children(server.process.pid) - before) == 1, "a restarted worker")
    [restarted] = _children(server.process.pid) - before
    _wait_for(lambda: restarted in _answered_by(db, load), "the restarted worker answers")
    answers = load.stop()
    server.stop()
    failed = [a for a in answers if a.status != 200]
    assert len(failed) <= 4, failed  # at most one request in flight a traffic thread
    assert not [a for a in failed if "ConnectError" in a.error], failed  # none refused
    records = _records(db)
    assert all(a.body["decision_id"] in records for a in answers if a.status == 200)
    assert f"worker {victim} died (exit -9); restarting" in server.log.read_text()
    _assert_chain_verifies(workdir)


def test_a_reload_asked_during_a_reload_runs_after_it_and_serves_the_newest_files(
        workdir: Path, server: ServerProcess, traffic: Any) -> None:
    db = workdir / ".pdp" / "decisions.db"
    token, sre = _token(workdir, ETL), _token(workdir, SRE)
    load = traffic(server, token)
    with ThreadPoolExecutor(2) as pool:
        workers, first = _rollout_under_way(workdir, server, pool)
        with (workdir / "policies" / "datasets.cedar").open("a") as f:
            f.write("\n// issue 16: a newer version, asked for during the rollout\n")
        second = pool.submit(_reload, server, sre)
        answered = first.result(timeout=300), second.result(timeout=300)
    assert all(r.status_code == 200 for r in answered), [r.text for r in answered]
    newest = answered[1].json()["version"]
    after = time.monotonic()
    _wait_for(lambda: sum(a.sent > after for a in load.answers) >= 20, "traffic after both")
    answers = load.stop()
    assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:5]
    assert _labels(a for a in answers if a.sent > after) == {newest}
    assert not _children(server.process.pid) & workers  # every old worker replaced
    records = _records(db)
    assert all(a.body["decision_id"] in records for a in answers)
    assert len(_admin_events(db, "bundle.reload")) == 2
