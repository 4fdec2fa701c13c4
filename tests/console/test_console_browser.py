"""The console in a real browser: Debian's chromium driven by Playwright, signing in
through the real npm ``oidc-provider`` against a real ``pdp serve``.

One provider and one server for the module. Screenshots of every page go to
``test-artifacts/console/`` (gitignored). Without chromium, Playwright or node the
tests skip with the reason, and fail under ``PDP_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POLICIES, REPO, unavailable
from tests.console.conftest import AUDITOR, ETL
from tests.identity.test_oidc_provider import oidc_provider_installed  # noqa: F401
from tests.server import ServerProcess, run_cli, start_server

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("PDP_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "test-artifacts" / "console"
LEDGER = {"type": "App::Dataset", "id": "ledger"}
SALES = {"type": "App::Dataset", "id": "sales-daily"}


@pytest.fixture(scope="module")
def provider(oidc_provider_installed: Path) -> Iterator[str]:  # noqa: F811
    process = subprocess.Popen(["node", "console_provider.mjs"], cwd=oidc_provider_installed,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"oidc-provider did not start: {line!r}")
    yield line.split()[1]
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("console-browser")
    bundle = workdir / "policies"
    shutil.copytree(POLICIES, bundle)
    # The example's guard.trust-domain forbids every principal outside example.org, admin
    # actions included; people from the organization's provider are let through it for
    # the admin area only (the README's recipe) and still need a group's permit.
    guards = bundle / "guards.cedar"
    text = guards.read_text()
    assert 'unless { principal.trust_domain == "example.org" };' in text
    guards.write_text(text.replace(
        'unless { principal.trust_domain == "example.org" };',
        'unless { principal.trust_domain == "example.org" || resource is Pdp::Admin };'))
    (workdir / "pdp.toml").write_text(f"""
policies = "{bundle}"
watch_policies = false

[[issuers]]
name = "console-idp"
issuer = "{provider}"
discovery_url = "{provider}/.well-known/openid-configuration"
audiences = ["pdp-console"]
groups_claim = "groups"
max_lifetime_s = 900

[console_oidc]
issuer = "{provider}"
client_id = "pdp-console"
""")
    process = start_server(["--dev", "--config", str(workdir / "pdp.toml")], cwd=workdir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (pip) is not installed")
    if not CHROMIUM.is_file():
        unavailable(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    # a CSP violation or a script error on any of our pages fails the test (the
    # provider's own pages fetch web fonts, which this machine cannot resolve)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and (
        "Content Security Policy" in m.text or "Refused to" in m.text) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def token(server: ServerProcess, spiffe_id: str) -> str:
    out = run_cli("token", "--spiffe-id", spiffe_id, "--state-dir", ".pdp",
                  cwd=server.log.parent)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def decide(server: ServerProcess, spiffe_id: str, action: str,
           resource: dict[str, str]) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/v1/authorize", timeout=10, json={
        "subject": {"token": token(server, spiffe_id)}, "action": action,
        "resource": resource})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def oidc_sign_in(page: Any, login: str) -> None:
    page.goto("/console/signin")
    page.get_by_role("link", name="Sign in with your organization").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page
    page.wait_for_url("**/console/decisions**")


def test_unauthenticated_browser_is_refused(page: Any) -> None:
    page.goto("/console/overview")
    assert "/console/signin" in page.url
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shot(page, "signin")


def test_auditor_signs_in_searches_opens_replays_follows_a_bar_verifies(
        page: Any, server: ServerProcess) -> None:
    denied = decide(server, ETL, "write", LEDGER)
    decide(server, ETL, "read", SALES)
    oidc_sign_in(page, "alice")
    assert page.get_by_test_id("principal").inner_text() == "alice"
    # search: a denied principal, by prefix
    page.get_by_label("Principal (prefix)").fill("spiffe://example.org/services/")
    page.get_by_label("Decision", exact=True).select_option("deny")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**decision=deny**")
    shot(page, "decisions")
    page.get_by_role("link", name=denied["decision_id"]).click()
    assert "no policy permits" in page.get_by_test_id("sentence").inner_text()
    page.get_by_role("button", name="Replay under the recorded and the current bundle").click()
    assert "reproduced" in page.get_by_test_id("replay-result").inner_text()
    shot(page, "decision")
    # the overview's chart: a click on the deny bar opens that bucket's denied decisions
    page.goto("/console/overview")
    page.wait_for_selector("canvas[data-ready='1']")
    shot(page, "overview")
    x, y = page.evaluate("""() => { const c = window.pdpOverviewChart;
        const bar = c.getDatasetMeta(1).data[c.getDatasetMeta(1).data.length - 1];
        const r = c.canvas.getBoundingClientRect();
        return [r.left + bar.x, r.top + (bar.y + bar.base) / 2]; }""")
    page.mouse.click(x, y)
    page.wait_for_url("**/console/decisions?decision=deny&since=**")
    assert page.get_by_role("link", name=denied["decision_id"]).is_visible()
    # integrity: verify now
    page.goto("/console/integrity")
    page.get_by_role("button", name="Verify now").click()
    assert "Chain verified" in page.get_by_test_id("verify-result").inner_text()
    shot(page, "integrity")
    for name in ("identities", "policies"):
        page.goto(f"/console/{name}")
        shot(page, name)
    # an auditor may not see live context (the bundle's policies say so), only the
    # incidents of the past, which come from the decision log
    page.goto("/console/context")
    assert "may not read the live context" in page.locator("main").inner_text()
    assert not page.get_by_role("button", name="Declare incident").count()
    page.get_by_role("button", name="Sign out").click()
    page.goto("/console/decisions")
    assert "/console/signin" in page.url


def test_sre_declares_and_ends_an_incident_that_authorize_sees(page: Any,
                                                                server: ServerProcess) -> None:
    oidc_sign_in(page, "sam")
    page.goto("/console/context")
    page.get_by_label("Level", exact=True).select_option("3")
    page.get_by_label("Reason").fill("browser drill")
    page.get_by_role("button", name="Declare incident").click()
    page.wait_for_url("**/console/context")
    assert "browser drill" in page.get_by_test_id("incidents").inner_text()
    shot(page, "context")
    during = decide(server, ETL, "read", SALES)
    assert during["decision"] == "deny"
    assert during["reasons"][0]["policy"] == "guard.incident.critical-lockdown"
    page.get_by_role("button", name="End incident").click()
    page.wait_for_url("**/console/context")
    assert "No incident in force" in page.get_by_test_id("incidents").inner_text()
    assert decide(server, ETL, "read", SALES)["decision"] == "allow"


def test_an_auditor_follows_last_nights_incident_to_who_was_denied_what_and_why(
        browser: Any, server: ServerProcess) -> None:
    sre, sre_errors = _signed_in(browser, server, "sam")
    sre.goto("/console/context")
    sre.get_by_label("Level", exact=True).select_option("3")
    sre.get_by_label("Reason").fill("night breach")
    sre.get_by_role("button", name="Declare incident").click()
    sre.wait_for_url("**/console/context")
    during = decide(server, ETL, "read", SALES)
    assert during["decision"] == "deny"
    incident = sre.get_by_test_id("incidents").locator("code").first.inner_text()
    sre.get_by_role("button", name=f"End incident {incident}").click()
    sre.wait_for_url("**/console/context")
    sre.context.close()
    page, errors = _signed_in(browser, server, "alice")
    page.goto("/console/context")
    past = page.get_by_test_id("past-incidents")
    assert "night breach" in past.inner_text() and "ended" in past.inner_text()
    shot(page, "context-auditor")
    page.get_by_role("link", name=f"Denied decisions during {incident}").click()
    page.wait_for_url("**/console/decisions?decision=deny&since=**")
    shot(page, "incident-denies")
    page.get_by_role("link", name=during["decision_id"]).click()
    assert "guard.incident.critical-lockdown" in page.get_by_test_id("sentence").inner_text()
    shot(page, "incident-denied-decision")
    page.context.close()
    assert not sre_errors and not errors, sre_errors + errors


def test_raised_risk_shows_its_evidence_decay_and_history_chart(
        browser: Any, server: ServerProcess) -> None:
    checkout = "spiffe://example.org/services/checkout"
    bearer = token(server, checkout)
    ids = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(20):  # a burst of denies for lack of a permit: risk goes to high
            body = client.post("/v1/authorize", json={
                "subject": {"token": bearer}, "action": "write", "resource": LEDGER}).json()
            assert body["reason_codes"] == ["policy.no_permit"]
            ids.append(body["decision_id"])
    page, errors = _signed_in(browser, server, "sam")
    page.goto("/console/context")
    risk = page.get_by_test_id("risk")
    assert checkout in risk.inner_text() and "deny_burst" in risk.inner_text()
    assert "steps down to medium at" in risk.inner_text()
    assert page.get_by_test_id("business-hours").inner_text().endswith(".")
    shot(page, "context-risk")
    risk.get_by_role("link", name=checkout).click()
    page.wait_for_url(f"**/console/identities/{checkout}")
    for _ in range(50):  # the raise is recorded in the log on its own thread
        if page.get_by_test_id("risk-history").count():
            break
        page.wait_for_timeout(100)
        page.reload()
    page.wait_for_selector("canvas#risk-history[data-ready='1']")
    history = page.get_by_test_id("risk-history").inner_text()
    assert "raised" in history and "20 denies in 60 s" in history
    assert page.get_by_role("link", name=ids[-1]).first.is_visible()
    shot(page, "identity-risk")
    page.context.close()
    assert not errors, errors


def _signed_in(browser: Any, server: ServerProcess, login: str) -> tuple[Any, list[str]]:
    """A page of a fresh browser context signed in as ``login`` (its own cookies), and the
    script errors and CSP violations it meets."""
    page = browser.new_context(base_url=server.url).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and (
        "Content Security Policy" in m.text or "Refused to" in m.text) else None)
    oidc_sign_in(page, login)
    return page, errors


def test_a_workload_is_refused(page: Any) -> None:
    page.goto("/console/signin")
    page.get_by_label(ETL).check()
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_test_id("refused").is_visible()
    assert "Forbidden" in page.get_by_role("heading").first.inner_text()
    shot(page, "workload-refused")
    _ = AUDITOR
