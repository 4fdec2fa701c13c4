"""The benchmark sections run end to end on tiny inputs. No timing is asserted here:
figures live in bench/RESULTS.md, written by `make bench`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import http as bench_http
from bench import loadgen, memory

pytestmark = pytest.mark.slow

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8181/v1/authorize
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    53.61ms   20.12ms 201.00ms   80.00%
    Req/Sec     1.02k   100.00     1.20k    70.00%
  Latency Distribution
     50%   53.61ms
     75%   60.00ms
     90%   80.00ms
     99%  164.00ms
  2046 requests in 2.00s, 3.80MB read
  Non-2xx or 3xx responses: 2
Requests/sec:   1023.00
Transfer/sec:      1.90MB
PDP_CHECK answered=2046 not_ok=3
"""


class _Tiny(asyncio.Protocol):
    """A keep-alive HTTP/1.1 server that answers every request with a fixed JSON body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            body = b'{"decision":"allow"}'
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"  # type: ignore[attr-defined]
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def tiny_server() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Tiny, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        server.close()


@pytest.mark.parametrize("rate", [0.0, 200.0])
def test_loadgen_counts_every_answer_in_closed_and_open_loop(tiny_server: int, rate: float) -> None:
    target = loadgen.Target.build(f"http://127.0.0.1:{tiny_server}/v1/authorize", body=b"{}",
                                  headers=[], expect='"decision":"allow"')
    result = asyncio.run(loadgen.run(target, connections=4, duration=0.3, rate=rate,
                                     warmup=0.1))
    assert result["requests"] > 0
    assert result["not_ok"] == 0 and result["errors"] == 0
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_loadgen_counts_answers_without_the_expected_text_as_not_ok(tiny_server: int) -> None:
    target = loadgen.Target.build(f"http://127.0.0.1:{tiny_server}/", body=None, headers=[],
                                  expect='"decision":"deny"')
    result = asyncio.run(loadgen.run(target, connections=2, duration=0.2, rate=0, warmup=0))
    assert result["requests"] > 0 and result["not_ok"] == result["requests"]


def test_loadgen_refuses_addresses_off_loopback() -> None:
    with pytest.raises(SystemExit, match="not a loopback address"):
        loadgen.Target.build("http://192.0.2.1:8181/", body=None, headers=[], expect=None)


def test_wrk_output_is_read_with_its_answer_check() -> None:
    run = bench_http.parse_wrk(WRK_OUTPUT)
    assert (run.rps, run.p50_ms, run.p99_ms) == (1023.0, 53.61, 164.0)
    assert (run.requests, run.not_ok, run.errors) == (2046, 3, 2)


def test_profile_breakdown_sorts_busy_samples_into_parts_of_the_request_path() -> None:
    samples = [
        (["thread (1)", "Runner.run (asyncio/runners.py:1)",
          "DecisionService._decide (pdp/decision/service.py:1)", "decide (pdp/decision/decide.py:1)",
          "evaluate (pdp/engine/evaluate.py:1)", "is_authorized (pdp/engine/cedar_call.py:41)"], 6),
        (["thread (1)", "RequestResponseCycle.run_asgi (uvicorn/x.py:1)",
          "FastAPI.__call__ (fastapi/applications.py:1)"], 3),
        (["thread (2)", "Thread.run (threading.py:1)", "GroupCommitLog._run (pdp/audit/chain/groupcommit.py:1)",
          "Condition.wait (threading.py:320)"], 50),  # waiting: not counted
        (["thread (2)", "Thread.run (threading.py:1)", "GroupCommitLog._run (pdp/audit/chain/groupcommit.py:1)"], 1),
    ]
    shares = dict(bench_http.breakdown(samples))
    assert shares["Cedar evaluation (cedarpy, in Rust)"] == pytest.approx(0.6)
    assert shares["HTTP: uvicorn/httptools, Starlette, FastAPI, pydantic"] == pytest.approx(0.3)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_memory_section_measures_a_small_generated_bundle() -> None:
    result = memory.measure(policies=60, entities=300, decisions=5, steady=12, breakdown=False)
    stages = result["stages"]
    assert set(stages) == {"baseline", "loaded", "served"}
    assert stages["loaded"]["VmRSS"] > 0 and sum(result["outcomes"].values()) == 5
    text = memory.report(result)
    assert "RSS (MB)" in text and "at steady state" in text
    assert all(run["steady_decisions"] == 12 * run["workers"] for run in result["servers"])
    # each of 1 and 2 workers on a fresh state directory, then restarted on what it left
    assert [(run["start"], run["workers"]) for run in result["servers"]] == [
        ("first start", 1), ("first start", 2), ("restart", 1), ("restart", 2)]
    assert text.count("| restart |") == 2


def test_cedarling_section_gets_the_same_answer_from_every_engine(tmp_path: Path) -> None:
    pytest.importorskip("cedarling_python", reason="the bench extra: pip install -e '.[bench]'")
    from bench import cedarling

    case = cedarling.Case(tmp_path, 10)
    case.check()  # ours (both resource forms), Cedarling and raw cedarpy: allow by one policy
    assert case.ours().reasons[0].policy == case.expected


def test_http_section_drives_two_workers_and_every_decision_is_in_the_verified_chain() -> None:
    result = bench_http.measure(seconds=0.5, rounds=1, use_wrk=False, rate=100.0)
    runs = [*result["max"]["authorize"], result["fixed"]["authorize"]]  # type: ignore[index]
    assert all(r.requests > 0 and r.not_ok == 0 and r.errors == 0 for r in runs)
    assert "chain intact" in " ".join(result["chain"])  # type: ignore[arg-type]
    assert result["records"] >= sum(r.requests for r in runs)
    text = bench_http.report(result)
    assert "/v1/authorize" in text and "HTTP layer alone" in text


def test_loop_thread_measures_the_loop_threads_share_of_a_decision() -> None:
    """`python -m bench loop_thread` on a few decisions: every answer a 200 (asserted
    inside), and the loop thread's CPU is part of the whole process's."""
    from bench import loop_thread

    result = loop_thread.measure(requests=32, rounds=1, concurrency=8)
    assert 0 < result["loop_thread_us"] <= result["process_us"]
    assert "event-loop thread" in loop_thread.report(result)


def test_help_lists_the_sections_and_runs_none(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # `python -m bench --help` once ran every section (options were only filtered out).
    import bench.__main__ as bench_main

    ran: list[str] = []
    monkeypatch.setattr(bench_main, "SECTIONS", {"scale": lambda: ran.append("scale") or 0})
    monkeypatch.setattr(bench_main, "_register_optional", lambda: None)
    monkeypatch.setattr("sys.argv", ["bench", "--help"])
    assert bench_main.main() == 0
    assert ran == []
    assert "sections: scale" in capsys.readouterr().out


def test_an_options_value_is_not_taken_for_a_section(monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m bench audit_writer --against /work/other` refused "/work/other" as a section.
    import bench.__main__ as bench_main

    ran: list[str] = []
    monkeypatch.setattr(bench_main, "SECTIONS", {"scale": lambda: ran.append("scale") or 0})
    monkeypatch.setattr(bench_main, "_register_optional", lambda: None)
    monkeypatch.setattr("sys.argv", ["bench", "scale", "--against", "/work/other"])
    assert bench_main.main() == 0
    assert ran == ["scale"]
