"""The files operators deploy with say only what the code knows.

Every `pdp` command line (Dockerfile CMD, compose, systemd, Kubernetes) parses with
the real CLI; every configuration file and `PDP_*` variable they use loads into the
settings model (which forbids unknown keys); every `pdp_*` metric name (and label) in
the alert rules and the dashboard is one the PDP exposes; compose.yaml is valid under
the Compose Specification's JSON schema (there is no Docker engine here: `docker
compose config` runs too when the plugin is installed); the bundle ConfigMap is the
example bundle.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from tests.conftest import POLICIES, REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
RULES = DEPLOY / "monitoring" / "prometheus-rules.yaml"
DASHBOARD = DEPLOY / "monitoring" / "grafana-dashboard.json"
# compose-spec/compose-spec, schema/compose-spec.json at 170098ba07d9 (Apache-2.0).
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")


# --- what the files contain ---------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_cmd() -> list[str]:
    (cmd,) = [json.loads(args) for word, args in dockerfile_instructions() if word == "CMD"]
    return cmd


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s_kind(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pdp_container() -> dict[str, Any]:
    deployment = k8s_kind("Deployment", "pdp")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "pdp"]
    return container


def systemd_exec_start() -> list[str]:
    lines = (DEPLOY / "systemd" / "pdp.service").read_text().splitlines()
    (line,) = [ln for ln in lines if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def pdp_commands() -> dict[str, list[str]]:
    """Every `pdp ...` command line of the deployment files, by where it is."""
    commands = {"Dockerfile CMD": dockerfile_cmd(),
                "systemd ExecStart": systemd_exec_start(),
                "Kubernetes pdp container": pdp_container()["command"]}
    for name, service in compose()["services"].items():
        if "command" in service:
            commands[f"compose service {name}"] = service["command"]
    return commands


# --- the CLI ------------------------------------------------------------------------------

@pytest.mark.parametrize("where", sorted(pdp_commands()))
def test_every_pdp_command_line_parses_with_the_real_cli(where: str) -> None:
    from pdp.cli.main import app

    argv = pdp_commands()[where]
    assert Path(argv[0]).name == "pdp", f"{where}: {argv}"
    group = typer.main.get_command(app)
    name, *args = argv[1:]
    command = group.get_command(group.context_class(group), name)  # type: ignore[attr-defined]
    assert command is not None, f"{where}: no command `pdp {name}`"
    # Parses the options as `pdp` would (unknown flag, missing value: UsageError), runs nothing.
    context = command.make_context(name, list(args))
    assert context.params.get("config"), f"{where}: serve without --config"


def test_the_compose_replicas_and_kubernetes_run_what_the_image_runs() -> None:
    assert pdp_container()["command"] == dockerfile_cmd()
    for name in ("pdp-1", "pdp-2"):
        assert compose()["services"][name]["command"] == dockerfile_cmd()


# --- configuration keys -------------------------------------------------------------------

def settings_from_text(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       env: dict[str, str] | None = None) -> Any:
    """Load ``text`` as pdp.toml with exactly ``env`` as the PDP_* environment."""
    from pdp.config import load_settings

    for key in [k for k in __import__("os").environ if k.startswith("PDP_")]:
        monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "pdp.toml"
    path.write_text(text)
    return load_settings(path)


def env_entries_to_dict(entries: Any) -> dict[str, str]:
    if isinstance(entries, dict):
        return {str(k): str(v) for k, v in entries.items()}
    return {e["name"]: e.get("value", "postgresql://pdp@db/pdp") for e in entries}


def test_the_images_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_text((DEPLOY / "docker" / "pdp.toml").read_text(), tmp_path,
                                  monkeypatch)
    assert settings.pep_allowlist and not settings.dev
    assert str(settings.policies) == "/etc/pdp/policies"


def test_the_compose_config_and_its_environment_load(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_entries_to_dict(compose()["services"]["pdp-1"]["environment"])
    settings = settings_from_text((DEPLOY / "compose" / "pdp.toml").read_text(), tmp_path,
                                  monkeypatch, env)
    assert settings.audit.backend == "postgres" and settings.audit.postgres_dsn
    assert settings.context.backend == "redis"
    assert "@postgres:" in settings.audit.postgres_dsn and "redis:6379" in settings.context.redis_url


def test_the_kubernetes_configmap_config_and_environment_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configmap = k8s_kind("ConfigMap", "pdp-config")
    env = {k: v for k, v in env_entries_to_dict(pdp_container()["env"]).items()
           if k.startswith("PDP_")}
    assert env, "the DSN comes from a Secret as PDP_AUDIT__POSTGRES_DSN"
    settings = settings_from_text(configmap["data"]["pdp.toml"], tmp_path, monkeypatch, env)
    assert settings.audit.backend == "postgres"
    (domain,) = settings.trust_domains
    # The bundle file the PDP reads is the one spiffe-helper writes.
    helper = dict(line.split(" = ", 1) for line in configmap["data"]["helper.conf"].splitlines())
    written = Path(json.loads(helper["cert_dir"])) / json.loads(helper["jwt_bundle_file_name"])
    assert domain.bundle_file == written


def test_an_unknown_key_is_refused_so_the_checks_above_can_fail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DEPLOY / "docker" / "pdp.toml").read_text() + "\nlisten_port = 1\n"
    with pytest.raises(ValueError, match="listen_port"):
        settings_from_text(text, tmp_path, monkeypatch)


# --- metrics ------------------------------------------------------------------------------

def exposed_metrics() -> dict[str, set[str]]:
    """Every sample name /metrics serves, with its label names (after one of each event)."""
    from prometheus_client.parser import text_string_to_metric_families

    from pdp.engine.store import ReloadOutcome
    from pdp.identity.trust_store import SourceStatus
    from pdp.metrics import Metrics

    metrics = Metrics()
    metrics.decisions.labels(decision="deny", reason="policy.no_permit").inc()
    metrics.latency.observe(0.001)
    metrics.observe_reload(ReloadOutcome(ok=True, changed=True, version="v1"))
    metrics.observe_identity_source(SourceStatus(
        source="bundle:example.org", kind="bundle", name="example.org", location="/x",
        ok=False, stale=True))
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def promql_expressions() -> dict[str, str]:
    exprs = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            exprs[f"rule {rule['alert']}"] = rule["expr"]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            exprs[f"panel {panel['title']} {target['refId']}"] = target["expr"]
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            exprs[f"variable {variable['name']}"] = variable["definition"]
    return exprs


SELECTOR = re.compile(r"\b(pdp_[a-z_]+)\b(\{[^}]*\})?")
SCRAPE_LABELS = {"instance", "job", "le"}


@pytest.mark.parametrize("where", sorted(promql_expressions()))
def test_every_metric_and_label_the_alerts_and_dashboard_use_is_exposed(where: str) -> None:
    expr = promql_expressions()[where]
    exposed = exposed_metrics()
    used = SELECTOR.findall(expr)
    assert used, f"{where} uses no pdp_* metric: {expr}"
    for name, matchers in used:
        assert name in exposed, f"{where}: {name} is not exposed (have: {sorted(exposed)})"
        for label in re.findall(r"(\w+)\s*[=!~]", matchers):
            assert label in exposed[name] | SCRAPE_LABELS, f"{where}: {name} has no label {label}"
    for label in re.findall(r"\bby \(([^)]*)\)", expr):
        for name in (n.strip() for n in label.split(",")):
            assert any(name in labels for labels in exposed.values()) or name in SCRAPE_LABELS, \
                f"{where}: no metric has the label {name}"


def test_the_alerts_cover_what_the_operators_asked_for() -> None:
    exprs = " ".join(v for k, v in promql_expressions().items() if k.startswith("rule "))
    for needed in ('reason="audit.unavailable"', "pdp_bundle_last_reload_ok",
                   "pdp_identity_source_stale", 'decision="deny"',
                   "pdp_decision_latency_seconds_bucket"):
        assert needed in exprs


def test_a_misspelt_metric_would_be_caught() -> None:
    assert "pdp_decision_total" not in exposed_metrics()  # the counter is pdp_decisions_total
    assert "pdp_decisions_total" in exposed_metrics()


# --- compose ------------------------------------------------------------------------------

def test_compose_is_valid_under_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)
    broken = {**compose(), "services": {"pdp-1": {"image": "x", "ports": [{"bogus": 1}]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft7Validator)


def test_compose_topology_is_two_pdps_behind_nginx_on_postgres_and_redis() -> None:
    services = compose()["services"]
    assert {"pdp-1", "pdp-2", "nginx", "postgres", "redis"} <= set(services)
    nginx_conf = (DEPLOY / "compose" / "nginx.conf").read_text()
    assert "server pdp-1:8181" in nginx_conf and "server pdp-2:8181" in nginx_conf
    for mount in [v for s in services.values() for v in s.get("volumes", []) if v.startswith("./")]:
        assert (REPO / mount.split(":")[0]).exists(), mount


def test_docker_compose_config_when_the_plugin_is_there() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        timeout=30).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here (the JSON schema test "
                    "above validates compose.yaml instead)")
    result = subprocess.run([docker, "compose", "-f", str(REPO / "compose.yaml"), "config",
                             "--quiet"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the image ----------------------------------------------------------------------------

def test_the_image_is_non_root_installs_the_checkout_and_checks_readyz() -> None:
    instructions = dockerfile_instructions()
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    (health,) = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert "/readyz" in health
    assert any(word == "RUN" and "pip install" in args and "'.[" in args
               for word, args in instructions)
    for word, args in instructions:
        if word == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            assert all((REPO / s).exists() for s in sources), args
    assert dockerfile_instructions()[0][1].split()[0].endswith("slim-bookworm")


# --- Kubernetes ---------------------------------------------------------------------------

def test_kubernetes_probes_volumes_and_disruption_budget() -> None:
    from pdp.api.ops import router

    paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    container = pdp_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= paths
    spec = k8s_kind("Deployment", "pdp")["spec"]
    assert spec["replicas"] >= 2
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "pdp-config"
    assert volumes["bundle"]["configMap"]["name"] == "pdp-bundle"
    assert volumes["spiffe-workload-api"]["csi"]["driver"] == "csi.spiffe.io"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    settings_text = k8s_kind("ConfigMap", "pdp-config")["data"]["pdp.toml"]
    config = tomllib.loads(settings_text)
    assert mounts["bundle"] == config["policies"] and mounts["state"] == config["state_dir"]
    pdb = k8s_kind("PodDisruptionBudget", "pdp")
    assert pdb["spec"]["selector"] == spec["selector"]
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml")
                                    if p.name != "kustomization.yaml")


def test_the_bundle_configmap_is_the_example_bundle_and_loads(tmp_path: Path) -> None:
    import importlib.util

    from pdp.engine import load_bundle

    spec = importlib.util.spec_from_file_location("make_bundle_configmap",
                                                  K8S / "make_bundle_configmap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "bundle-configmap.yaml").read_text() == module.bundle_configmap(POLICIES), \
        "regenerate: python deploy/kubernetes/make_bundle_configmap.py policies > ..."
    data = k8s_kind("ConfigMap", "pdp-bundle")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    # The same policies (the bundle's tests/ are not in it, so its version hash differs).
    assert set(load_bundle(tmp_path).policies) == set(load_bundle(POLICIES).policies)


# --- licence ------------------------------------------------------------------------------

def test_the_licence_file_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    sdk = tomllib.loads((REPO / "sdk" / "python" / "pyproject.toml").read_text())["project"]
    assert sdk["license"] == "Apache-2.0"
