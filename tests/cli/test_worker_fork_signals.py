"""A SIGTERM that lands on a worker of ``pdp serve --workers N`` just after its fork stops it.

The CI run of stop 27 found the supervisor waiting the full 30 s for a replacement it had
told to stop during a rollout: a forked child starts with the supervisor's Python
handlers, which only set the child's copy of the stop flag, so the signal was swallowed
and the worker went on to serve. These tests send the signal at once after the fork,
as the supervisor does when it stops mid-rollout.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

import pytest

from pdp.cli import workers
from pdp.cli.worker_link import ReloadRequest


def _serve_forever_after_imports(started: Connection) -> None:  # a child
    """A stand-in for :func:`pdp.cli.workers._worker`: its first step, then serving."""
    workers.unblock_stop_signals()
    started.send(os.getpid())
    while True:
        time.sleep(0.05)


def _serve_forever_with_inherited_handlers(started: Connection) -> None:  # a child
    """What the worker did before: start without touching the supervisor's handlers."""
    started.send(os.getpid())
    while True:
        time.sleep(0.05)


@pytest.fixture
def supervisor_handlers() -> Iterator[threading.Event]:
    """The supervisor's SIGTERM handler (it sets a flag), installed in this process."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    yield stop
    signal.signal(signal.SIGTERM, previous)


def _fork_and_terminate_at_once(target: Callable[[Connection], None], *, blocked: bool,
                                wait: float = 10) -> int | None:
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=target, args=(theirs,), daemon=True)
    if blocked:
        workers.start_child(process)
    else:
        process.start()
    process.terminate()  # before the child has reached its first line, most of the time
    process.join(timeout=wait)
    if process.is_alive():
        process.kill()
        process.join(timeout=10)
        return None  # the signal was swallowed
    mine.close()
    return process.exitcode


def test_a_sigterm_right_after_the_fork_stops_the_worker(
        supervisor_handlers: threading.Event) -> None:
    codes = [_fork_and_terminate_at_once(_serve_forever_after_imports, blocked=True)
             for _ in range(20)]
    assert codes == [-signal.SIGTERM] * 20
    assert not supervisor_handlers.is_set()  # the signals went to the children only


def test_without_blocking_the_inherited_handler_swallows_it(
        supervisor_handlers: threading.Event) -> None:
    """The attack works on the old way of forking: this proves the test above can fail."""
    assert _fork_and_terminate_at_once(_serve_forever_with_inherited_handlers,
                                       blocked=False, wait=2) is None


def test_the_supervisors_mask_is_restored_after_the_fork(
        supervisor_handlers: threading.Event) -> None:
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=_serve_forever_after_imports, args=(theirs,), daemon=True)
    workers.start_child(process)
    try:
        assert mine.recv() == process.pid
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor still hears its own stop
        assert supervisor_handlers.wait(5)
    finally:
        process.kill()
        process.join(timeout=10)


def test_a_request_unread_when_the_supervisor_stops_is_found() -> None:
    """A reload request still in the pipe when the loop stops is answered, not left to
    hold its worker's drain open."""
    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    theirs.send(ReloadRequest(7, "spiffe://example.org/sre", None))
    worker = workers.Worker(process=context.Process(target=print), conn=mine, version=None,
                            forked_at=time.monotonic())
    [request] = workers._unread_requests(worker)
    assert request.message.id == 7 and request.worker is worker
    mine.close()
    assert workers._unread_requests(worker) == []  # a closed pipe: nothing, no error
