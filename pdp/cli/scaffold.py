"""The files ``pdp init DIR`` writes: a small bundle that validates, is formatted, and
whose tests cover every policy and condition, plus a CI workflow for its repository.

Kept as text here (not package data) so the package needs no data-file configuration;
``tests/cli/test_init.py`` runs every command the workflow runs on a fresh scaffold.
"""

from __future__ import annotations

SCHEMA = """\
// The bundle's own types. The PDP adds its namespace `Pdp` (`pdp schema` prints it):
// Pdp::Workload is every principal, Pdp::Group its groups, Pdp::Live the live context.
namespace App {
  // A document; `confidential` ones need more than membership.
  entity Document = {
    confidential: Bool,
  };

  type RequestContext = {
    live: Pdp::Live,                // filled in by the PDP: incidents, risk, business hours
    credential: Pdp::Credential,    // filled in by the PDP: the credential's age
    purpose?: String,               // sent by the PEP, optional
  };

  action "read", "write" appliesTo {
    principal: Pdp::Workload,
    resource: Document,
    context: RequestContext,
  };
}
"""

POLICIES = """\
// Every policy carries @id (stable: tests, the decision log and impact reports name it)
// and @reason (one sentence, shown to callers and auditors); @advice is optional and
// tells a denied caller what to do.
@id("documents.readers.read")
@reason("Readers may read documents that are not confidential.")
@advice("Ask for a task grant to read a confidential document.")
permit (
  principal in Pdp::Group::"readers",
  action == App::Action::"read",
  resource is App::Document
)
unless { resource.confidential };

@id("documents.writers.read-write")
@reason("Writers may read and write every document.")
permit (
  principal in Pdp::Group::"writers",
  action in [App::Action::"read", App::Action::"write"],
  resource is App::Document
);

@id("documents.incident.freeze")
@reason("During a major incident documents may not be written.")
@advice("Retry when the incident is over.")
forbid (
  principal,
  action == App::Action::"write",
  resource is App::Document
)
when { context.live.incident_level >= 2 };
"""

ENTITIES = """\
[
  {"uid": {"type": "Pdp::Group", "id": "readers"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Pdp::Group", "id": "writers"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/reader"},
   "parents": [{"type": "Pdp::Group", "id": "readers"}]},
  {"uid": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/writer"},
   "parents": [{"type": "Pdp::Group", "id": "writers"}]},
  {"uid": {"type": "App::Document", "id": "handbook"}, "attrs": {"confidential": false},
   "parents": []},
  {"uid": {"type": "App::Document", "id": "salaries"}, "attrs": {"confidential": true},
   "parents": []}
]
"""

TESTS = """\
# `pdp test` runs every tests/*.yaml: each case is one request and what it must decide.
# `expect.policies` lists the determining policies exactly ([] for a deny by default).
description: Who may read and write documents
defaults:
  now: "2026-01-05T10:00:00Z"   # the clock is frozen: cases decide the same on every day
cases:
  - description: a reader reads the handbook
    principal: spiffe://example.org/services/reader
    action: read
    resource: {type: App::Document, id: handbook}
    expect: {decision: allow, policies: [documents.readers.read]}

  - description: a reader may not read a confidential document
    principal: spiffe://example.org/services/reader
    action: read
    resource: {type: App::Document, id: salaries}
    expect: {decision: deny, policies: [], reason_code: policy.no_permit}

  - description: a writer writes the handbook
    principal: spiffe://example.org/services/writer
    action: write
    resource: {type: App::Document, id: handbook}
    expect: {decision: allow, policies: [documents.writers.read-write]}

  - description: nobody writes during a major incident
    principal: spiffe://example.org/services/writer
    action: write
    resource: {type: App::Document, id: handbook}
    live: {incident_level: 2}
    expect: {decision: deny, policies: [documents.incident.freeze], reason_code: policy.forbid}
"""

WORKFLOW = """\
# CI for this policy repository: format, validate, test with coverage, and on pull
# requests the impact of the change on the tests (add the decision log with
# `--config` and drop `--no-log` when CI can read an export of it).
name: policies
on:
  pull_request:
  push:
    branches: [main]
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      # The PDP, at the version your servers run (a wheel, an index, or its git repository).
      - run: pip install "${PDP_PACKAGE:-pdp}"
        env:
          PDP_PACKAGE: ${{ vars.PDP_PACKAGE }}
      - run: pdp fmt --check .
      - run: pdp validate .
      - run: pdp test . --coverage --min-coverage 100
      - if: github.event_name == 'pull_request'
        run: |
          git worktree add ../base "origin/${{ github.base_ref }}"
          pdp impact --candidate . ../base --no-log
"""

README = """\
# Policies

A policy bundle for the PDP: `schema.cedarschema`, `*.cedar` policies, `entities.json`
and tests in `tests/*.yaml`.

```sh
pdp fmt .                    # format the policies with Cedar's formatter
pdp validate .               # every problem at once, with file and line
pdp test . --coverage        # the test suites, and what they never exercise
pdp impact --candidate BRANCH .   # which decisions a change would flip
pdp serve --dev --policies . # serve this bundle locally
```
"""

FILES = {
    "schema.cedarschema": SCHEMA,
    "documents.cedar": POLICIES,
    "entities.json": ENTITIES,
    "tests/documents.yaml": TESTS,
    ".github/workflows/policies.yaml": WORKFLOW,
    "README.md": README,
}
"""Relative path -> content, written by ``pdp init``."""
