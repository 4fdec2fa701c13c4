"""The container image's start-up, run without Docker: the Dockerfile's CMD, with the files
its COPY lines put in place, from its WORKDIR, answers /readyz, logs each request as JSON
(the image's [log] format) and says when it stops.

There is no Docker engine here, so the image's file system is laid out under a temporary
root: each ``COPY src dst`` of the final stage is copied to ``<root>/dst``, and absolute
paths in the image's pdp.toml are read under that root. Only the listen address and port
differ from the image (``PDP_HOST``/``PDP_PORT``: a free loopback port, not 0.0.0.0:8181).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.deploy.test_deploy_files import dockerfile_cmd, dockerfile_instructions
from tests.server import free_port


def image_root(root: Path) -> tuple[Path, Path]:
    """Lay out the final stage's copied files under ``root``; (config path, workdir)."""
    stages = [i for i, (word, _) in enumerate(dockerfile_instructions()) if word == "FROM"]
    final = dockerfile_instructions()[stages[-1]:]
    workdir = Path("/")
    for word, args in final:
        if word == "COPY" and not args.startswith("--from"):
            src, dst = args.split()
            target = root / dst.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target)
            else:
                shutil.copy(REPO / src, target)
        elif word == "WORKDIR":
            workdir = Path(args)
    config = root / "etc/pdp/pdp.toml"
    # Absolute paths inside the image's config, read under the temporary root.
    text = re.sub(r'"(/[^"]*)"', lambda m: json.dumps(str(root / m.group(1).lstrip("/"))),
                  config.read_text())
    config.write_text(text)
    (root / workdir.relative_to("/")).mkdir(parents=True, exist_ok=True)
    return config, root / workdir.relative_to("/")


def test_the_images_command_serves_and_is_ready(tmp_path: Path) -> None:
    root = tmp_path / "image"
    config, workdir = image_root(root)
    argv = dockerfile_cmd()
    assert argv[:2] == ["pdp", "serve"]
    args = [a if not a.startswith("/") else str(root / a.lstrip("/")) for a in argv[2:]]
    assert str(config) in args
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_")}
    env.update(PDP_HOST="127.0.0.1", PDP_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "pdp.cli.main", "serve", *args],
                               cwd=workdir, env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    try:
        ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None, log.read_text()
        assert ready.status_code == 200, ready.text
        # The image trusts no issuer and admits only allowlisted PEPs: this caller proves no
        # identity, so it is refused (401, a recorded decision), never served an error.
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/authorize",
                            headers={"x-request-id": "image-test-1"},
                            json={"subject": {"token": "not-a-jwt"}, "action": "read",
                                  "resource": {"type": "App::Dataset", "id": "sales-daily"}})
        assert answer.status_code == 401, answer.text
        assert (root / "var/lib/pdp/decisions.db").exists()  # the image's volume
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so a supervisor sees why it ended.
    assert process.returncode in (0, -signal.SIGTERM)
    lines = log.read_text().splitlines()
    requests = [json.loads(ln) for ln in lines if ln.startswith('{"event": "request"')]
    authorize = [r for r in requests if r["path"] == "/v1/authorize"]
    assert authorize and authorize[0]["status"] == 401
    assert authorize[0]["request_id"] == "image-test-1" and authorize[0]["method"] == "POST"
    assert any(ln.startswith('{"event": "stopping"') for ln in lines)
    assert json.loads(lines[-1])["event"] == "stopped"
