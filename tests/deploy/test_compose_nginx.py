"""compose's nginx.conf is accepted by the real nginx (`nginx -t`), with the replicas'
names replaced by loopback addresses (there is no Docker network here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.gateways.test_nginx_auth_request import nginx_binary


def test_nginx_accepts_the_compose_configuration(tmp_path: Path) -> None:
    binary = nginx_binary()  # installs nginx as root, else skips (fails in CI)
    text = (REPO / "deploy" / "compose" / "nginx.conf").read_text()
    for name, port in (("pdp-1:8181", 18181), ("pdp-2:8181", 18182)):
        assert text.count(f"server {name}") == 1
        text = text.replace(f"server {name}", f"server 127.0.0.1:{port}")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf),
                             "-g", f"pid {tmp_path}/nginx.pid;"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(text.replace("proxy_next_upstream error timeout;", "proxy_next_upstream;"))
    assert subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(broken), "-g",
                           f"pid {tmp_path}/nginx.pid;"], capture_output=True,
                          timeout=60).returncode != 0
