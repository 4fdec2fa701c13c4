// The SDK's copies of server code agree with the server on the shared cases
// (sdk/fixtures/routes.json, forwarded-certs.json; the Python side checks the server and
// the Python SDK against the same expectations in tests/sdk/test_sdk_copies_agree.py).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { credentialFromHeaders, matchRoute } from '../src/index.js';

const fixtures = new URL('../../fixtures/', import.meta.url);
const routes = JSON.parse(readFileSync(new URL('routes.json', fixtures), 'utf8'));
const forwarded = JSON.parse(readFileSync(new URL('forwarded-certs.json', fixtures), 'utf8'));

for (const c of routes.cases) {
  test(`route: ${c.method} ${c.path}`, () => {
    const found = matchRoute(routes.routes, c.method, c.path);
    const got = found && { action: found.action, resource: found.resource, context: found.context };
    assert.deepEqual(got, c.expect);
  });
}

for (const c of forwarded.cases.filter((x) => x.expect !== 'refused')) {
  test(`forwarded certificate: ${c.description}`, () => {
    assert.deepEqual(credentialFromHeaders(c.headers, c.peer, c.trusted_proxies), c.expect);
  });
}

test('a bearer token wins over a forwarded certificate', () => {
  const c = forwarded.cases[0];
  assert.deepEqual(credentialFromHeaders({ ...c.headers, authorization: 'Bearer abc' }, c.peer, c.trusted_proxies), { token: 'abc' });
  assert.equal(credentialFromHeaders({ authorization: 'Basic abc' }, null, []), null);
});
