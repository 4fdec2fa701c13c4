"""The CLI as people expect it: --version, completion, help that shows defaults and no
reStructuredText markup, commands grouped, `pdp init`, `pdp config show`, admin credentials."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from pdp import __version__
from pdp.cli.config_cmd import mask_secrets
from pdp.cli.main import app
from tests.conftest import REPO

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group`` (typer's groups have ``commands``)."""
    out = []
    for name, command in group.commands.items():
        out.append((*prefix, name))
        if hasattr(command, "commands"):
            out += _commands(command, (*prefix, name))
    return out


def test_version_prints_the_installed_version() -> None:
    for flag in ("--version", "-V"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0 and result.stdout.strip() == f"pdp {__version__}"


def test_completion_scripts_are_offered() -> None:
    # The installed command in a process of its own, as a shell runs it (in process,
    # click's completion state left by other CLI tests made this exit 1).
    # Typer's own switch makes `--show-completion bash` take the shell named; without it
    # typer asks shellingham for the parent shell and ignores the name, and under `make`
    # (recipes run in /bin/sh) that is `sh`, which it refuses ("Shell sh not supported").
    pdp = Path(sys.executable).with_name("pdp")
    result = subprocess.run([str(pdp), "--show-completion", "bash"], capture_output=True,
                            text=True, timeout=60,
                            env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "_PDP_COMPLETE" in result.stdout


def test_help_shows_defaults_that_the_flags_resolve_to() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    out = result.stdout

    def block(option: str) -> str:  # the option's help, up to the next option
        start = out.index(f"--{option} ")
        end = out.find(" --", start + len(option) + 3)
        return out[start:end]

    assert "8181" in block("port") and "127.0.0.1" in block("host")
    assert "default: 1" in block("workers") and ".pdp" in block("state-dir")


def test_no_help_text_shows_restructuredtext_markup() -> None:
    paths = _commands(typer.main.get_command(app))
    assert ("audit", "show") in paths and ("context", "incident", "set") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        for markup in ("``", ":mod:", ":func:", ":class:"):
            assert markup not in result.stdout, (path, markup)
        # "Listen port ." was "[default: 8181]" eaten as markup: no sentence ends " ."
        assert not re.search(r"\w \.(\s|$)", result.stdout), (path, result.stdout)


def test_commands_are_grouped_serve_and_try_first() -> None:
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    panels = [out.index(p) for p in ("Serve and try", "Write policies", "Administer")]
    assert panels == sorted(panels) and "Audit" in out
    assert out.index(" serve ") < out.index(" token ") < out.index(" init ")


def test_init_scaffolds_a_bundle_whose_ci_workflow_passes(tmp_path: Path) -> None:
    bundle = tmp_path / "repo"
    result = runner.invoke(app, ["init", str(bundle)])
    assert result.exit_code == 0, result.output
    assert (bundle / "schema.cedarschema").exists() and (bundle / "entities.json").exists()
    assert '@reason("' in (bundle / "documents.cedar").read_text()
    workflow = yaml.safe_load((bundle / ".github/workflows/policies.yaml").read_text())
    commands = [line.strip() for step in workflow["jobs"]["check"]["steps"]
                for line in str(step.get("run", "")).splitlines() if line.strip().startswith("pdp ")]
    assert [c.split()[1] for c in commands] == ["fmt", "validate", "test", "impact"]
    shutil.copytree(bundle, tmp_path / "base")  # what `git worktree add ../base` makes
    for command in commands:  # every command the workflow runs exists and passes here
        done = subprocess.run([sys.executable, "-m", "pdp.cli.main", *shlex.split(command)[1:]],
                              cwd=bundle, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    again = runner.invoke(app, ["init", str(bundle)])
    assert again.exit_code == 1 and "not an empty directory" in again.stderr


def test_config_show_prints_the_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    toml = tmp_path / "pdp.toml"
    toml.write_text('port = 9999\n[audit]\nbackend = "postgres"\n'
                    'postgres_dsn = "postgresql://pdp:hunter2@db/pdp"\n')
    result = runner.invoke(app, ["config", "show", "--config", str(toml)],
                           env={"PDP_CONTEXT__REDIS_URL": "redis://:s3cret@cache:6379/0"})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["port"] == 9999 and shown["audit"]["backend"] == "postgres"
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout
    assert shown["audit"]["postgres_dsn"] == "postgresql://pdp:***@db/pdp"
    assert shown["context"]["redis_url"] == "redis://:***@cache:6379/0"
    assert str(toml) in result.stderr and "PDP_CONTEXT__REDIS_URL" in result.stderr


def test_mask_secrets_covers_urls_dsns_and_secret_keys() -> None:
    assert mask_secrets({"dsn": "host=db password='a b' user=x"}) == {
        "dsn": "host=db password=*** user=x"}
    assert mask_secrets({"client_secret": "x", "port": 1}) == {"client_secret": "***", "port": 1}
    assert mask_secrets(["https://u:tok@git.example/r.git"]) == ["https://u:***@git.example/r.git"]
    assert mask_secrets({"url": "https://git.example/r.git"}) == {"url": "https://git.example/r.git"}


def test_an_admin_command_without_a_credential_names_token_and_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_ADMIN")}
    done = subprocess.run([sys.executable, "-m", "pdp.cli.main", "context", "show",
                           "--url", "http://127.0.0.1:9"], capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert "--token" in done.stderr and "PDP_ADMIN_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("bad", ["false", "sh -c 'exit 0'"])
def test_a_failing_or_silent_credential_command_is_an_error(bad: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDP_ADMIN")}
    done = subprocess.run([sys.executable, "-m", "pdp.cli.main", "grant", "list",
                           "--url", "http://127.0.0.1:9"], capture_output=True, text=True,
                          env={**env, "PDP_ADMIN_TOKEN_COMMAND": bad}, timeout=60, cwd=REPO)
    assert done.returncode == 1 and "PDP_ADMIN_TOKEN_COMMAND" in done.stderr
