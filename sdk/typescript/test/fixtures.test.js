// The shared API fixtures (sdk/fixtures/api) through this SDK against the real PDP; the
// Python SDK replays the same files (tests/sdk/test_sdk_fixtures.py).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { PDPClient } from '../src/index.js';
import { PDP_URL, TOKENS, needsPdp } from './helpers.js';

const dir = new URL('../../fixtures/api/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

/** @param {import('../src/index.js').Decision} d @param {any} expect */
function check(d, expect) {
  assert.equal(d.decision, expect.decision);
  if ('reason_codes' in expect) assert.deepEqual(d.reasonCodes, expect.reason_codes);
  if ('policies' in expect) assert.deepEqual(d.reasons.map((r) => r.policy), expect.policies);
  if ('explanation_starts_with' in expect) assert.ok(d.explanation.startsWith(expect.explanation_starts_with), d.explanation);
  if ('principal' in expect) assert.equal(d.principal, expect.principal);
  if (expect.has_valid_until) assert.ok(d.validUntil && d.timestamp && d.validUntil > d.timestamp);
  if ('made_by_sdk' in expect) assert.equal(d.madeBySdk, expect.made_by_sdk);
}

for (const file of files) {
  const fixture = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  test(`fixture ${file}: ${fixture.description}`, needsPdp, async () => {
    const token = fixture.subject.token ?? TOKENS[fixture.subject.spiffe_id];
    assert.ok(token, `no token minted for ${fixture.subject.spiffe_id}`);
    const pdp = new PDPClient(PDP_URL);
    const { request, expect } = fixture;
    if (fixture.endpoint === '/v1/authorize') {
      check(await pdp.authorize({ token, ...request }), expect);
    } else if (fixture.endpoint === '/v1/authorize/batch') {
      const decisions = await pdp.authorizeBatch({ token, items: request.items });
      assert.equal(decisions.length, expect.results.length);
      decisions.forEach((d, i) => check(d, expect.results[i]));
    } else {
      const body = structuredClone(request);
      body.subject.properties = { ...(body.subject.properties ?? {}), token };
      const answer = fixture.endpoint === '/access/v1/evaluation'
        ? await pdp.evaluation(body) : await pdp.evaluations(body);
      if ('decision' in expect) assert.equal(/** @type {any} */ (answer).decision, expect.decision);
      if ('evaluations' in expect) {
        assert.deepEqual(/** @type {any} */ (answer).evaluations.map((/** @type {any} */ e) => e.decision),
          expect.evaluations.map((/** @type {any} */ e) => e.decision));
      }
    }
  });
}
