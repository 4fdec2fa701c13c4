"""What ``pdp serve`` imports to start (one worker, SQLite log, the example bundle): not
the libraries only some configurations use. Each cost a tenth of a second or more of
every start: psycopg (the postgres extra; ``rollups.prepare_store`` imported it to ask
whether the log was PostgreSQL's) and httpx, whose import brings its command-line client
(rich, pygments) although a PDP with local keys fetches nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import POLICIES, REPO

NOT_AT_START = ("psycopg", "pdp.audit.postgres", "httpx", "rich", "pygments")

START = """
import sys
import pdp.cli.main
from pdp.cli.serve import build_for_serving
from pdp.config import load_settings
from pdp.server import create_app

settings = load_settings(None, dev=True, policies={policies!r}, state_dir={state!r},
                         watch_policies=False)
assert settings.audit.backend == "sqlite"
components = build_for_serving(settings, supervised=False)  # --in-process
create_app(components, freeze_gc=True)
components.close()
print(sorted({{m.split(".")[0] if not m.startswith("pdp.") else m for m in sys.modules
              if m.startswith({wanted!r})}}))
"""


def test_pdp_serve_starts_without_the_libraries_of_other_configurations(tmp_path: Path) -> None:
    code = START.format(policies=str(POLICIES), state=str(tmp_path), wanted=NOT_AT_START)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
