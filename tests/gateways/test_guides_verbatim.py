"""The guides' commands answer as written against `make run` (`pdp serve --dev`, no
configuration): every `curl` to localhost:8181 in the README's quickstart and in
docs/integrations.md that needs nothing but `$TOKEN` is run with bash and curl, and the
answer is held to the comment the guide prints under it (`# {"decision": "allow", ...`,
`# {"decision":true}`, `# HTTP/1.1 200 OK`). Once, the Envoy guide's "try it" answered
`request.no_route`, because `make run` had no route table.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import POLICIES, REPO
from tests.server import run_cli, start_server

GUIDES = (REPO / "README.md", REPO / "docs" / "integrations.md")


@dataclass(frozen=True)
class GuideCommand:
    where: str
    command: str
    expected: str  # the first comment line after it, without "# "


def shell_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def guide_commands() -> list[GuideCommand]:
    found = []
    for guide in GUIDES:
        for block in shell_blocks(guide.read_text()):
            i = 0
            while i < len(block):
                if not block[i].startswith("curl"):
                    i += 1
                    continue
                lines = [block[i]]
                # continued: a trailing backslash, or a quote left open (-d '{ ... }')
                while lines[-1].rstrip().endswith("\\") or "\n".join(lines).count("'") % 2:
                    i += 1
                    lines.append(block[i])
                i += 1
                expected = block[i][2:] if i < len(block) and block[i].startswith("# ") else ""
                command = "\n".join(lines)
                command = command.split("   #", 1)[0] if "\n" not in command else command
                found.append(GuideCommand(guide.name, command, expected))
    return found


def runnable(command: GuideCommand) -> bool:
    """Needs only the dev PDP and $TOKEN (not the FastAPI service on :8000, nginx on :8080,
    a gateway's own token or a decision id to fill in)."""
    variables = set(re.findall(r"\$(\w+)", command.command))
    return ("localhost:8181" in command.command and variables <= {"TOKEN"}
            and "<" not in command.command)


def test_the_guides_still_have_their_commands() -> None:
    commands = [c for c in guide_commands() if runnable(c)]
    assert len(commands) >= 6, commands
    assert any("/v1/gateway/envoy/" in c.command for c in commands)


def check(command: GuideCommand, out: str) -> None:
    assert "request.no_route" not in out, (command, out)
    expected = command.expected
    status = re.match(r"(HTTP/1.1 \d+)", expected)
    if status:
        assert out.startswith(status.group(1)), (command, out)
        return
    if expected.startswith("{"):
        answer = json.loads(out)
        said = re.match(r'\{"decision":\s*("?\w+"?)', expected)
        if said:
            assert answer["decision"] == json.loads(said.group(1)), (command, out)
        for key in re.findall(r'"(\w+)":', expected)[:1]:
            assert key in answer, (command, out)


def test_the_guides_commands_answer_as_written_against_make_run(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    commands = [c for c in guide_commands() if runnable(c)]
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)  # what `make run` runs
    try:
        token = run_cli("token", "--spiffe-id", "spiffe://example.org/services/etl",
                        cwd=tmp_path).stdout.strip()
        for command in commands:
            text = command.command.replace("localhost:8181", f"127.0.0.1:{server.port}")
            result = subprocess.run(["bash", "-c", text], capture_output=True, text=True,
                                    env={"TOKEN": token, "PATH": "/usr/bin:/bin"}, timeout=30)
            assert result.returncode == 0, (command, result.stderr)
            check(command, result.stdout)
    finally:
        server.stop()
