"""``pdp serve --workers N``: what the supervisor builds before it forks
(``pdp.cli.serve.prepare_workers``) leaves no thread running once its components are
closed. A thread alive at ``fork()`` is not copied into the workers, but whatever lock
it held is, held for good; and the app the supervisor builds (and drops) to share what
building one leaves behind must start nothing of its own."""

from __future__ import annotations

import threading
from pathlib import Path

from pdp.cli.serve import prepare_workers
from pdp.config import load_settings
from pdp.engine.store import preload
from tests.conftest import POLICIES


def test_the_supervisor_forks_with_no_thread_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(None, dev=True, policies=POLICIES, state_dir=tmp_path,
                             watch_policies=False)
    before = set(threading.enumerate())
    components = prepare_workers(settings)
    try:
        assert components.bundles.current is not None
    finally:
        components.close()
        preload(None)  # nothing leaks into other tests
    assert set(threading.enumerate()) - before == set()
