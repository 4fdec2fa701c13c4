// The middleware in a real Express app and a real Fastify app, against a real PDP:
// allow goes on with the decision, deny is 403 with the explanation, no or refused
// credential is 401 with a challenge, a PDP that is down is a 403 (fail closed), and a
// route table maps requests as the PDP's gateway does.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import express from 'express';
import Fastify from 'fastify';

import { Guard, PDPClient, expressRequire, expressRoutes, fastifyRequire, fastifyRoutes } from '../src/index.js';
import { ETL, PDP_URL, TOKENS, deadUrl, needsPdp } from './helpers.js';

const ROUTES = [
  { method: 'GET', path: '/datasets/{name}', action: 'read', resource_type: 'App::Dataset', resource_id: '{name}' },
  { method: 'PUT', path: '/datasets/{name}', action: 'write', resource_type: 'App::Dataset', resource_id: '{name}' },
];

/** @param {import('express').Express} app */
async function listen(app) {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r(undefined)); }) };
}

/** @param {string} url @param {string} [token] @param {string} [method] */
async function call(url, token, method = 'GET') {
  const response = await fetch(url, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** Both ways of protecting an Express app, one answer. @param {Guard} guard */
function expressApp(guard) {
  const app = express();
  app.get('/one/datasets/:name', expressRequire(guard, 'read', { resource: (req) => ['Dataset', req.params.name] }),
    (req, res) => { res.json({ dataset: req.params.name, decision_id: /** @type {any} */ (req).pdpDecision.decisionId }); });
  const table = express.Router();
  table.use(expressRoutes(guard, { routes: ROUTES.map((r) => ({ ...r, path: `/table${r.path}` })) }));
  table.all('/table/datasets/:name', (req, res) => { res.json({ dataset: req.params.name }); });
  app.use(table);
  return app;
}

test('Express: allow, deny with explanation, 401 without or with a refused credential', needsPdp, async () => {
  const server = await listen(expressApp(new Guard(new PDPClient(PDP_URL), { namespace: 'App' })));
  try {
    for (const base of [`${server.url}/one`, `${server.url}/table`]) {
      const ok = await call(`${base}/datasets/sales-daily`, TOKENS[ETL]);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.dataset, 'sales-daily');
      const missing = await call(`${base}/datasets/sales-daily`);
      assert.equal(missing.status, 401);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="pdp"');
      assert.deepEqual(missing.body.reason_codes, ['identity.missing']);
      const refused = await call(`${base}/datasets/sales-daily`, 'not-a-jwt');
      assert.equal(refused.status, 401);
      assert.deepEqual(refused.body.reason_codes, ['identity.malformed']);
      assert.ok(refused.headers.get('x-pdp-decision-id'));
    }
    const denied = await call(`${server.url}/table/datasets/ledger`, TOKENS[ETL], 'PUT');
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body.reason_codes, ['policy.no_permit']);
    assert.match(denied.body.explanation, /^Denied: no policy permits/);
    assert.equal(denied.headers.get('x-pdp-decision-id'), denied.body.decision_id);
    const unmapped = await call(`${server.url}/table/datasets/ledger`, TOKENS[ETL], 'DELETE');
    assert.equal(unmapped.status, 403);
    assert.deepEqual(unmapped.body.reason_codes, ['request.no_route']);
  } finally {
    await server.close();
  }
});

test('Express: a PDP that is down is a 403 with pdp.unreachable', async () => {
  const server = await listen(expressApp(new Guard(new PDPClient(await deadUrl()), { namespace: 'App' })));
  try {
    const down = await call(`${server.url}/one/datasets/sales-daily`, 'any-token');
    assert.equal(down.status, 403);
    assert.deepEqual(down.body.reason_codes, ['pdp.unreachable']);
    assert.equal(down.body.decision_id, null);
  } finally {
    await server.close();
  }
});

test('Fastify: a preHandler per route and an onRequest route table', needsPdp, async () => {
  const guard = new Guard(new PDPClient(PDP_URL), { namespace: 'App' });
  const app = Fastify();
  app.get('/one/datasets/:name', { preHandler: fastifyRequire(guard, 'read', {
    resource: (/** @type {any} */ req) => ['Dataset', req.params.name] }) },
  async (req) => ({ dataset: /** @type {any} */ (req.params).name, decision_id: /** @type {any} */ (req).pdpDecision.decisionId }));
  await app.register(async (scope) => {
    scope.addHook('onRequest', fastifyRoutes(guard, { routes: ROUTES.map((r) => ({ ...r, path: `/table${r.path}` })) }));
    scope.all('/table/datasets/:name', async (req) => ({ dataset: /** @type {any} */ (req.params).name }));
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const ok = await call(`${url}/one/datasets/sales-daily`, TOKENS[ETL]);
    assert.equal(ok.status, 200);
    assert.ok(ok.body.decision_id);
    assert.equal((await call(`${url}/table/datasets/sales-daily`, TOKENS[ETL])).status, 200);
    const denied = await call(`${url}/table/datasets/ledger`, TOKENS[ETL], 'PUT');
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body.reason_codes, ['policy.no_permit']);
    assert.equal((await call(`${url}/one/datasets/sales-daily`)).status, 401);
  } finally {
    await app.close();
  }
});
