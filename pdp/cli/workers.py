"""``pdp serve --workers N``: a supervisor and N uvicorn processes, one per slot.

uvicorn's own ``--workers`` shares one listening socket between its processes,
and each worker's event loop accepts every connection pending when it wakes
up: a PEP that opens its connection pool at once lands on one worker (measured
on 2 workers: 29, 32, 31 of 32 connections), which saturates while the other
idles. Here each slot has its own ``SO_REUSEPORT`` socket, and the kernel spreads
new connections over the slots' sockets by a hash of their addresses.
Ref: https://lwn.net/Articles/542629/

The supervisor binds the slots' sockets once and keeps them for its whole life; a
worker inherits its slot's socket when it is forked. A worker that stops (replaced,
crashed) closes only its own descriptor: the socket and the connections waiting in
its accept queue stay, for the next worker of the slot. (Closing one of several
``SO_REUSEPORT`` listeners resets the connections queued on it, unless the kernel's
``net.ipv4.tcp_migrate_req`` is on, which it is not by default.)

Workers are forked, not spawned: the supervisor has loaded the bundle (and offered it
with :func:`pdp.engine.store.preload`), so each worker finds it parsed instead of
parsing 10,000 policies again, and the pages holding it stay shared between the
processes until one writes them (``gc.freeze`` first, so that the workers' collections
do not write to every object: bench/RESULTS.md, "hmem"). Reading an object writes its
reference count, so what decisions read most, the static entities, is kept in one
buffer rather than as objects (:mod:`pdp.engine.entity_records`, "hcow").

The supervisor owns reloads, as nginx and gunicorn do: it watches the bundle source
itself, loads a changed bundle in a thread of lower CPU priority (it serves nothing,
so the load need not share the GIL, and on a busy machine the workers keep the
cores), and if the bundle is valid replaces the workers one slot at a time: it forks
a worker with the new bundle, waits for its readiness message, then sends the old
one SIGTERM, which drains its requests and closes its log. A refused bundle replaces
nothing; every worker is told, for its ``/readyz`` and metrics. Workers forward
``POST /v1/policies/reload`` here and answer with its outcome
(:mod:`pdp.cli.worker_link`). One reload at a time; a change seen during one starts
another after it, which loads the newest files.

The supervisor restarts a worker that dies, with its current bundle; it stops
every worker when the first ones cannot start (the same error would repeat), and
passes SIGTERM/SIGINT on so that each drains its requests and closes its log.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from pdp.cli.worker_link import Draining, OutcomeMessage, Ready, ReloadRequest, WorkerLink
from pdp.engine.bundle import BundleVersion
from pdp.engine.store import BundleStore, ReloadOutcome, preload

STARTUP_FAILED = 3  # a worker's exit code when it never started serving
MAX_RESTARTS = 5  # within RESTART_WINDOW_S; then the supervisor gives up
RESTART_WINDOW_S = 60.0
START_ATTEMPTS = 3  # forks of a slot's replacement in one rollout before giving it up
READY_TIMEOUT_S = 120.0  # a replacement not serving by then is killed (an attempt lost)
DRAIN_TIMEOUT_S = 60.0  # a replaced worker still draining by then is killed
RELOAD_NICE = 10  # the loader thread's niceness: the workers come first
TICK_S = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _listen(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def check_port_free(host: str, port: int) -> None:
    """Raise ``OSError`` when something listens on ``host:port`` already.

    Binding without ``SO_REUSEPORT`` fails on a port in use, including one held by
    another ``pdp serve`` whose workers would otherwise silently share it.
    """
    _listen(host, port, reuse_port=False).close()


def slot_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening ``SO_REUSEPORT`` socket a slot, kept by the supervisor."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_listen(host, port, reuse_port=True))
            sockets[-1].listen(2048)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _lower_priority() -> None:
    """Make the calling thread nicer (Linux: niceness is per thread, so forks from the
    supervisor's main thread keep the workers' priority). Elsewhere: nothing."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RELOAD_NICE)


def start_child(process: BaseProcess) -> None:
    """Fork ``process`` with SIGTERM/SIGINT blocked until its target runs
    (:func:`unblock_stop_signals`). The child inherits the supervisor's Python handlers,
    which would only set the child's copy of the stop flag: a SIGTERM landing between
    the fork and the worker's own handlers would be swallowed, and the worker would
    serve on until it is killed (30 s on a stop). Blocked, it stays pending instead."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_stop_signals() -> None:
    """In a child of :func:`start_child`: the default handlers, then the signals; one
    sent meanwhile stops the child now (it serves nothing yet, it has nothing to drain)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _worker(sock: socket.socket, conn: Connection, supervisor: int,
            options: dict[str, Any]) -> None:  # pragma: no cover - a child
    unblock_stop_signals()
    import uvicorn

    from pdp.api.drain import DrainingServer, draining_protocol_class
    from pdp.metrics import choose_value_class
    from pdp.server import supervised_app

    link = WorkerLink(conn, supervisor)
    link.die_with_supervisor()
    choose_value_class()  # the supervisor chose before PROMETHEUS_MULTIPROC_DIR was set

    class Server(DrainingServer):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # lifespan done, listening: tell the supervisor
                link.ready()

    if "http" not in options:  # else the TLS listener's, which drains too (pdp.api.tls)
        options = {**options, "http": draining_protocol_class()}
    server = Server(uvicorn.Config(lambda: supervised_app(link.attach), factory=True,
                                   **options), on_draining=link.draining)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILED)


@dataclass(eq=False)
class Worker:
    process: BaseProcess
    conn: Connection  # the supervisor's end of the worker's pipe
    version: BundleVersion | None  # of the bundle it serves
    forked_at: float
    ready: bool = False
    accepting: bool = True  # until it says Draining (or dies)
    stopping_since: float | None = None
    # Replaced while it asked for a reload: its requests, answered with this round's
    # outcome once it accepts no connection.
    unanswered: list[Request] = field(default_factory=list)
    answer: ReloadOutcome | None = None


@dataclass(eq=False)
class Request:
    worker: Worker
    message: ReloadRequest


@dataclass(eq=False)
class Slot:
    sock: socket.socket
    worker: Worker | None = None
    replacement: Worker | None = None
    attempts: int = 0


@dataclass(eq=False)
class Round:
    """One reload: the load (in the loader thread), then the rollout, slot by slot."""

    requests: list[Request]
    load: Future[ReloadOutcome]
    asked: bool  # by a worker: the askers record the outcome; else one worker does
    outcome: ReloadOutcome | None = None
    todo: list[Slot] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Supervisor:
    def __init__(self, sockets: list[socket.socket], options: dict[str, Any],
                 bundles: BundleStore, watch_every_s: float | None) -> None:
        self.fork = multiprocessing.get_context("fork")
        self.slots = [Slot(sock) for sock in sockets]
        self.options = options
        self.bundles = bundles
        self.watch_every_s = watch_every_s
        self.stop = threading.Event()
        self.status = 0
        self.loader = ThreadPoolExecutor(1, thread_name_prefix="pdp-reload",
                                         initializer=_lower_priority)
        self.round: Round | None = None
        self.waiting: list[Request] = []  # for the next round
        self.held: list[tuple[Request, ReloadOutcome]] = []  # answered by _release
        self.triggered = False
        self.changed = threading.Event()  # set by the watcher thread
        self.draining: list[Worker] = []
        self.restarts: list[float] = []
        self.served = False  # a worker has served: from then on failures are restarted
        self.refused: ReloadOutcome | None = None  # the last refusal, until a reload succeeds
        self._wake_r, self._wake_w = os.pipe()

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        for slot in self.slots:
            slot.worker = self._fork(slot)
        if self.watch_every_s is not None:
            self.bundles.start_watching(self.watch_every_s, on_change=self._source_changed)
        try:
            while not self.stop.is_set():
                self._wait_once()
                self._enforce_timeouts()
                self._advance()
        finally:
            self._shutdown()
        return self.status

    def request_stop(self) -> None:
        """From a signal handler: stop, and wake the loop."""
        self.stop.set()
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b".")
        except OSError:  # full (already woken) or closed (stopped)
            pass

    def _source_changed(self) -> None:  # the watcher thread
        self.changed.set()
        self._wake()

    def _workers(self) -> list[Worker]:
        live = [w for s in self.slots for w in (s.worker, s.replacement) if w is not None]
        return live + self.draining

    def _wait_once(self) -> None:
        by_handle: dict[Any, Worker] = {}
        for worker in self._workers():
            by_handle[worker.conn] = worker
            by_handle[worker.process.sentinel] = worker
        ready = wait([*by_handle, self._wake_r], timeout=TICK_S)
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for handle in ready:  # messages first: a worker may say "ready" and then die
            if isinstance(handle, Connection):
                self._receive(by_handle[handle])
        for handle in ready:
            if isinstance(handle, int) and handle != self._wake_r:
                self._died(by_handle[handle])

    def _receive(self, worker: Worker) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if isinstance(message, Ready):
                    self._ready(worker, message)
                elif isinstance(message, Draining):
                    worker.accepting = False
                    if worker.answer is not None:
                        for request in worker.unanswered:
                            self._answer(request, worker.answer)
                        worker.unanswered = []
                    self._release()
                elif isinstance(message, ReloadRequest):
                    self.waiting.append(Request(worker, message))
                    self.triggered = True
        except (EOFError, OSError):
            pass  # it died: its sentinel says so

    # -- workers ---------------------------------------------------------------------

    def _fork(self, slot: Slot) -> Worker:
        mine, theirs = self.fork.Pipe()
        process = self.fork.Process(target=_worker, daemon=False,
                                    args=(slot.sock, theirs, os.getpid(), self.options))
        start_child(process)
        theirs.close()
        current = self.bundles.current
        return Worker(process, mine, current.version if current else None, time.monotonic())

    def _slot_of(self, worker: Worker) -> Slot | None:
        return next((s for s in self.slots if worker in (s.worker, s.replacement)), None)

    def _ready(self, worker: Worker, message: Ready) -> None:
        worker.ready, worker.version = True, message.version
        self.served = True
        if self.refused is not None:  # a restarted worker reports it as the others do
            self._send(worker, OutcomeMessage(replace(self.refused, record=False)))
        slot = self._slot_of(worker)
        if slot is not None and slot.replacement is worker:
            self._promote(slot)

    def _died(self, worker: Worker) -> None:
        worker.process.join(timeout=5)  # its sentinel closed: it is exiting
        worker.conn.close()
        code = worker.process.exitcode
        if worker in self.draining:
            self.draining.remove(worker)
            self._take_requests_of(worker)  # one for the next round: nobody to answer
            self._release()
            return
        slot = self._slot_of(worker)
        if slot is None or self.stop.is_set():
            return
        self._take_requests_of(worker)  # nobody to answer
        if slot.replacement is worker:
            slot.replacement = None
            self._replacement_died(slot, code)
            return
        slot.worker = None
        if not worker.ready and not self.served and code == STARTUP_FAILED:
            print(f"pdp: worker {worker.process.pid} could not start; stopping", file=sys.stderr)
            self._give_up()
            return
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            print(f"pdp: workers died {len(self.restarts)} times in {RESTART_WINDOW_S:.0f} s; "
                  "stopping", file=sys.stderr)
            self._give_up()
            return
        print(f"pdp: worker {worker.process.pid} died (exit {code}); restarting", file=sys.stderr)
        if slot.replacement is None:  # else the replacement, once ready, serves the slot
            slot.worker = self._fork(slot)

    def _give_up(self) -> None:
        self.status = 1
        self.stop.set()

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            new = slot.replacement
            if new is not None and not new.ready and now - new.forked_at > READY_TIMEOUT_S:
                new.process.kill()  # its sentinel counts the attempt
        for worker in self.draining:
            if worker.stopping_since is not None and now - worker.stopping_since > DRAIN_TIMEOUT_S:
                worker.process.kill()

    # -- reloads ---------------------------------------------------------------------

    def _advance(self) -> None:
        if self.changed.is_set():
            self.changed.clear()
            self.triggered = True
        if self.round is None:
            if self.triggered:
                self._start_round()
            return
        r = self.round
        if r.outcome is None and r.load.done():
            r.outcome = _outcome_of(r.load, self.bundles)
            if not r.outcome.ok:
                self._finish(r)
                return
            new = self.bundles.current
            preload(new, authoritative=True)  # every fork from now on serves it
            from pdp.api.app import freeze_loaded_bundle  # deferred: serve.py's docstring

            freeze_loaded_bundle()  # shared with the workers, as the first one
            r.todo = [s for s in self.slots if new is None or s.worker is None
                      or s.worker.version != new.version]
            # The asking workers' slots last: each answers once the others serve the new
            # bundle, just before it is replaced itself.
            askers = {id(q.worker) for q in r.requests}
            r.todo.sort(key=lambda s: id(s.worker) in askers)
            self._next_slot(r)

    def _start_round(self) -> None:
        requests, self.waiting, self.triggered = self.waiting, [], False
        who = requests[0].message if requests else None
        load = self.loader.submit(self.bundles.reload, who.requested_by if who else None,
                                  who.authorized_by if who else None, share_gil=False)
        load.add_done_callback(lambda _: self._wake())
        self.round = Round(requests, load, asked=bool(requests))

    def _next_slot(self, r: Round) -> None:
        current = self.bundles.current
        while r.todo:
            slot = r.todo[0]
            if slot.worker is not None and current is not None \
                    and slot.worker.version == current.version:
                r.todo.pop(0)  # restarted meanwhile, with the new bundle
                continue
            slot.attempts = 1
            slot.replacement = self._fork(slot)
            return
        self._finish(r)

    def _promote(self, slot: Slot) -> None:
        """The slot's replacement serves: the old worker drains and goes."""
        old, slot.worker, slot.replacement = slot.worker, slot.replacement, None
        r = self.round
        if old is not None:
            # This round's requests hold its drain open; answered once it accepts no
            # connection, so that an asker that hears "ok" reaches only the new workers.
            # One it forwarded after this round's load began stays for the next round
            # (the files may have changed after this load read them): its answer must be
            # a load that followed the request. The worker drains meanwhile, accepting
            # nothing, and answers it then.
            old.unanswered = self._take_requests_of(old, waiting=False)
            old.answer = r.outcome if r is not None else None
            old.stopping_since = time.monotonic()
            old.process.terminate()
            self.draining.append(old)
        if r is not None and r.todo and r.todo[0] is slot:
            r.todo.pop(0)
            self._next_slot(r)

    def _replacement_died(self, slot: Slot, code: int | None) -> None:
        r = self.round
        version = self.bundles.current.version.label if self.bundles.current else "?"
        if slot.attempts < START_ATTEMPTS:
            print(f"pdp: a worker with bundle {version} died while starting (exit {code}); "
                  f"retrying ({slot.attempts + 1} of {START_ATTEMPTS})", file=sys.stderr)
            slot.attempts += 1
            slot.replacement = self._fork(slot)
            return
        problem = (f"a worker with bundle {version} died while starting {START_ATTEMPTS} "
                   f"times (last exit {code}); the previous bundle keeps serving in its slot")
        print(f"pdp: {problem}", file=sys.stderr)
        if slot.worker is None:  # its old worker died meanwhile: the slot needs one
            slot.worker = self._fork(slot)
        if r is not None and r.todo and r.todo[0] is slot:
            r.problems.append(problem)
            r.todo.pop(0)
            self._next_slot(r)

    def _finish(self, r: Round) -> None:
        """Answer the askers and tell every worker; one of them records the outcome."""
        assert r.outcome is not None
        if r.problems:  # the bundle is valid but not every slot could take it
            r.outcome = replace(r.outcome, ok=False, problems=tuple(r.problems))
        self.round = None
        self.refused = None if r.outcome.ok else r.outcome
        answered = {id(q.worker) for q in r.requests}
        self.held += [(request, r.outcome) for request in r.requests]
        self._release()
        serving = [s.worker for s in self.slots if s.worker is not None and s.worker.ready]
        recorder = serving[0] if serving and not r.asked else None
        for worker in serving:
            if id(worker) not in answered:
                self._send(worker, OutcomeMessage(replace(r.outcome, requested_by=None,
                                                          authorized_by=None,
                                                          record=worker is recorder)))
        print(f"pdp: reload: {_describe(r.outcome)}", file=sys.stderr)

    def _release(self) -> None:
        """Answer the finished rounds' requests once no replaced worker accepts
        connections: an asker that hears "ok" reaches only workers with the new bundle
        (the last replaced worker may still be accepting when its round finishes)."""
        if any(w.accepting for w in self.draining):
            return
        held, self.held = self.held, []
        for request, outcome in held:
            self._answer(request, outcome)

    def _take_requests_of(self, worker: Worker, *, waiting: bool = True) -> list[Request]:
        """Remove ``worker``'s requests (this round's, and the next's unless not
        ``waiting``) and return them."""
        rounds = [self.round.requests] if self.round is not None else []
        taken = [q for q in [*(self.waiting if waiting else []), *(q for rs in rounds for q in rs)]
                 if q.worker is worker]
        if waiting:
            self.waiting = [q for q in self.waiting if q.worker is not worker]
        if self.round is not None:
            self.round.requests = [q for q in self.round.requests if q.worker is not worker]
        return taken

    def _answer(self, request: Request, outcome: ReloadOutcome) -> None:
        asked = request.message
        self._send(request.worker, OutcomeMessage(
            replace(outcome, requested_by=asked.requested_by, authorized_by=asked.authorized_by,
                    record=True), request_id=asked.id))

    @staticmethod
    def _send(worker: Worker, message: OutcomeMessage) -> None:
        try:
            worker.conn.send(message)
        except OSError:  # it died: its sentinel says so
            pass

    # -- the end ---------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.bundles.stop_watching()
        self.loader.shutdown(wait=False, cancel_futures=True)
        workers = self._workers()
        # A reload request holds its worker's drain open: answer it, the server stops.
        current = self.bundles.current
        stopping = ReloadOutcome(ok=False, changed=False,
                                 version=current.version.label if current else None,
                                 problems=("the server is stopping",))
        for request, outcome in self.held:  # their round is done: its outcome
            self._answer(request, outcome)
        for worker in workers:
            for request in [*self._take_requests_of(worker), *worker.unanswered,
                            *_unread_requests(worker)]:
                self._answer(request, stopping)
        for worker in workers:  # each drains its requests and closes its decision log
            if worker.process.is_alive():
                worker.process.terminate()
            # A request it forwards from now on finds the pipe closed and is answered by
            # the worker itself (WorkerLink): nothing holds its drain open.
            worker.conn.close()
        for worker in workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=10)
        for slot in self.slots:
            slot.sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _unread_requests(worker: Worker) -> list[Request]:
    """The reload requests ``worker`` sent that the loop has not read (a stop came first)."""
    requests = []
    try:
        while worker.conn.poll():
            message = worker.conn.recv()
            if isinstance(message, ReloadRequest):
                requests.append(Request(worker, message))
    except (EOFError, OSError):  # it died, or the pipe is closed
        pass
    return requests


def _outcome_of(load: Future[ReloadOutcome], bundles: BundleStore) -> ReloadOutcome:
    """The load's outcome; an unexpected error refuses the reload, the old bundle stays."""
    try:
        return load.result()
    except Exception as e:  # noqa: BLE001 - any failure is a refusal with its reason
        current = bundles.current
        return ReloadOutcome(ok=False, changed=False,
                             version=current.version.label if current else None,
                             problems=(f"the reload failed: {e!r}",))


def _describe(outcome: ReloadOutcome) -> str:
    if outcome.ok:
        return f"serving {outcome.version}" + ("" if outcome.changed else " (unchanged)")
    return f"refused, still serving {outcome.version}: " + "; ".join(outcome.problems)


def run(host: str, port: int, workers: int, options: dict[str, Any], bundles: BundleStore,
        watch_every_s: float | None) -> int:
    """Serve with ``workers`` processes until SIGTERM/SIGINT; the exit status.

    ``bundles`` holds the loaded bundle; ``watch_every_s``: watch its source (its poll
    interval), or None not to."""
    import gc

    check_port_free(host, port)
    sockets = slot_sockets(host, port, workers)
    gc.collect()
    gc.freeze()  # what the supervisor built stays shared: see the module docstring
    preload(bundles.current, authoritative=True)
    supervisor = Supervisor(sockets, {"host": host, "port": port, **options}, bundles,
                            watch_every_s)
    previous = {sig: signal.signal(sig, lambda *_: supervisor.request_stop())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        gc.unfreeze()


__all__ = ["check_port_free", "run", "slot_sockets"]
