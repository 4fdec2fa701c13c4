"""``pdp serve --workers N``: N uvicorn processes, each listening on its own socket.

uvicorn's own ``--workers`` shares one listening socket between its processes,
and each worker's event loop accepts every connection pending when it wakes
up: a PEP that opens its connection pool at once lands on one worker (measured
on 2 workers: 29, 32, 31 of 32 connections), which saturates while the other
idles. Here each worker binds the port itself with ``SO_REUSEPORT``, and the
kernel spreads new connections over the workers' sockets by a hash of their
addresses. Ref: https://lwn.net/Articles/542629/

The parent supervises: it checks that the port is free, starts the workers,
restarts one that dies, stops all of them when one cannot start (the same error
would repeat), and passes SIGTERM/SIGINT on so that each drains its requests
and closes its log.

Workers are forked, not spawned. ``pdp serve`` has loaded the bundle in the
parent before (and offered it with :func:`pdp.engine.store.preload`), so each
worker, building its components through :func:`pdp.server.app_from_env`, finds
the bundle already parsed instead of parsing 10,000 policies again, and the
pages holding it stay shared between the processes until one writes them
(``gc.freeze`` first, so that the workers' collections do not write to every
object; the worker checks the files by streaming them, and the parent has built the
app once, so that neither is allocated anew in each worker: bench/RESULTS.md,
"hmem"). A restarted worker is forked the same way, with the bundle the parent
loaded if its files are unchanged; if they changed, it loads what it finds,
which is what the other workers have reloaded meanwhile. The parent runs no
thread of its own when it forks (the components it built were closed).
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import socket
import sys
import threading
import time
from typing import Any

STARTUP_FAILED = 3  # a worker's exit code when it never started serving
MAX_RESTARTS = 5  # within RESTART_WINDOW_S; then the parent gives up
RESTART_WINDOW_S = 60.0
APP = "pdp.server:app_from_env"


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


def _worker(host: str, port: int, options: dict[str, Any]) -> None:  # pragma: no cover - a child
    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):  # forked with the parent's handlers
        signal.signal(sig, signal.SIG_DFL)
    from pdp.metrics import choose_value_class

    choose_value_class()  # the parent chose before PROMETHEUS_MULTIPROC_DIR was set
    sock = _listen(host, port, reuse_port=True)
    sock.listen(2048)
    server = uvicorn.Server(uvicorn.Config(APP, factory=True, host=host, port=port, **options))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILED)


def run(host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Serve with ``workers`` processes until SIGTERM/SIGINT; the exit status."""
    check_port_free(host, port)
    fork = multiprocessing.get_context("fork")
    gc.collect()
    gc.freeze()  # what the parent built stays shared: see the module docstring
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> multiprocessing.process.BaseProcess:
        process = fork.Process(target=_worker, args=(host, port, options), daemon=False)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    restarts: list[float] = []
    status = 0
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILED:
                    print(f"pdp: worker {process.pid} could not start; stopping", file=sys.stderr)
                    status = 1
                    stop.set()
                    break
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    print(f"pdp: workers died {len(restarts)} times in {RESTART_WINDOW_S:.0f} s; "
                          "stopping", file=sys.stderr)
                    status = 1
                    stop.set()
                    break
                print(f"pdp: worker {process.pid} died (exit {process.exitcode}); restarting",
                      file=sys.stderr)
                processes[i] = start()
    finally:
        for process in processes:  # each drains its requests and closes its decision log
            if process.is_alive() and process.pid is not None:
                process.terminate()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        gc.unfreeze()
    return status


__all__ = ["check_port_free", "run"]
