// The client against a real `pdp serve --dev` (and local servers that fail on purpose):
// allow, deny with explanation, batch, AuthZEN, fail closed when the PDP is down, slow or
// broken, a cache bounded by valid_until, and this service's own credential.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  DecisionCache, PDP_CREDENTIAL_UNAVAILABLE, PDP_ERROR, PDP_REJECTED, PDP_UNREACHABLE,
  PDPClient, PDPError, fileToken, staticToken,
} from '../src/index.js';
import { ETL, PDP_URL, TOKENS, countingFetch, deadUrl, localServer, needsPdp } from './helpers.js';

const SALES = { type: 'App::Dataset', id: 'sales-daily' };

test('allow and deny, with reasons, explanation and valid_until', needsPdp, async () => {
  const pdp = new PDPClient(PDP_URL);
  const allow = await pdp.authorize({ token: TOKENS[ETL], action: 'read', resource: SALES });
  assert.equal(allow.allowed, true);
  assert.equal(allow.reasons[0].policy, 'dataset.pipelines.read-write');
  assert.ok(allow.decisionId && !allow.madeBySdk && !allow.cached);
  assert.ok(allow.validUntil && allow.timestamp && allow.validUntil > allow.timestamp);
  const deny = await pdp.authorize({ token: TOKENS[ETL], action: 'write', resource: ['App::Dataset', 'ledger'], requestId: 'ts-1' });
  assert.equal(deny.allowed, false);
  assert.deepEqual(deny.reasonCodes, ['policy.no_permit']);
  assert.match(deny.explanation, /^Denied: no policy permits/);
  assert.ok(Array.isArray(deny.diagnosis));
});

test('batch answers in order; AuthZEN evaluation and evaluations', needsPdp, async () => {
  const pdp = new PDPClient(PDP_URL);
  const [a, b] = await pdp.authorizeBatch({ token: TOKENS[ETL], items: [
    { action: 'read', resource: SALES }, { action: 'write', resource: ['App::Dataset', 'ledger'] }] });
  assert.deepEqual([a.decision, b.decision], ['allow', 'deny']);
  const subject = { type: 'Pdp::Workload', id: ETL, properties: { token: TOKENS[ETL] } };
  const one = await pdp.evaluation({ subject, action: { name: 'read' }, resource: SALES });
  assert.equal(one.decision, true);
  const many = await pdp.evaluations({ subject, resource: SALES,
    evaluations: [{ action: { name: 'read' } }, { action: { name: 'write' }, resource: { type: 'App::Dataset', id: 'ledger' } }] });
  assert.deepEqual(many.evaluations.map((e) => e.decision), [true, false]);
});

test('a PDP that is down is a deny with pdp.unreachable, never an exception', async () => {
  const pdp = new PDPClient(await deadUrl());
  const d = await pdp.authorize({ token: 't', action: 'read', resource: SALES });
  assert.equal(d.allowed, false);
  assert.deepEqual(d.reasonCodes, [PDP_UNREACHABLE]);
  assert.ok(d.madeBySdk && d.decisionId === null);
  const batch = await pdp.authorizeBatch({ token: 't', items: [{ action: 'read', resource: SALES }] });
  assert.deepEqual(batch[0].reasonCodes, [PDP_UNREACHABLE]);
  const authzen = await pdp.evaluation({ subject: { type: 'Pdp::Workload', id: 'x' }, action: { name: 'read' }, resource: SALES });
  assert.equal(authzen.decision, false);
  assert.deepEqual(authzen.context?.reason_codes, [PDP_UNREACHABLE]);
});

test('a PDP that does not answer within the timeout is a deny within the timeout', async () => {
  const silent = await localServer(() => {}); // accepts, never answers
  try {
    const pdp = new PDPClient(silent.url, { timeoutMs: 300 });
    const started = performance.now();
    const d = await pdp.authorize({ token: 't', action: 'read', resource: SALES });
    assert.deepEqual(d.reasonCodes, [PDP_UNREACHABLE]);
    assert.match(d.explanation, /no answer within 300 ms/);
    assert.ok(performance.now() - started < 5000, 'the deny must come near the timeout, not hang');
  } finally {
    await silent.close();
  }
});

test('5xx, garbage and 4xx answers are pdp.error and pdp.rejected', async () => {
  const answers = [[500, '{"detail":"boom"}', PDP_ERROR], [200, 'not json', PDP_ERROR],
    [200, '{"decision":"maybe"}', PDP_ERROR], [422, '{"detail":"resource.id"}', PDP_REJECTED]];
  for (const [status, body, code] of answers) {
    const server = await localServer((req, res) => { res.writeHead(Number(status)); res.end(body); });
    try {
      const d = await new PDPClient(server.url).authorize({ token: 't', action: 'read', resource: SALES });
      assert.deepEqual(d.reasonCodes, [code], `${status} ${body}`);
      assert.equal(d.allowed, false);
    } finally {
      await server.close();
    }
  }
});

test("onFailure: 'throw' throws a PDPError with the code; a function builds the deny", async () => {
  const url = await deadUrl();
  await assert.rejects(new PDPClient(url, { onFailure: 'throw' }).authorize({ token: 't', action: 'read', resource: SALES }),
    (e) => e instanceof PDPError && e.code === PDP_UNREACHABLE);
  const mine = await new PDPClient(url, { onFailure: (e) => ({ ...(/** @type {any} */ ({})), decision: 'deny', allowed: false, reasonCodes: [`mine:${e.code}`] }) })
    .authorize({ token: 't', action: 'read', resource: SALES });
  assert.deepEqual(mine.reasonCodes, [`mine:${PDP_UNREACHABLE}`]);
});

test('the cache answers until valid_until, then asks again', needsPdp, async () => {
  let now = 0;
  const cache = new DecisionCache({ now: () => now });
  const { fetch, calls } = countingFetch();
  const pdp = new PDPClient(PDP_URL, { cache, fetch });
  const ask = () => pdp.authorize({ token: TOKENS[ETL], action: 'read', resource: SALES });
  const first = await ask();
  const second = await ask();
  assert.equal(calls.count, 1);
  assert.ok(second.cached && second.decisionId === first.decisionId);
  assert.ok(first.validUntil && first.timestamp);
  now += first.validUntil.getTime() - first.timestamp.getTime(); // exactly at valid_until: dead
  const third = await ask();
  assert.equal(calls.count, 2);
  assert.ok(!third.cached && third.decisionId !== first.decisionId);
});

test('the cache is bounded, never keeps a fail-closed deny, and drops another context version', () => {
  let now = 0;
  const cache = new DecisionCache({ maxEntries: 2, now: () => now });
  const at = new Date('2026-01-05T10:00:00Z');
  const decision = (/** @type {string} */ version) => ({
    decision: /** @type {const} */ ('allow'), allowed: true, decisionId: 'd', reasonCodes: [], explanation: '', reasons: [],
    principal: null, action: null, resource: null, validUntil: new Date(at.getTime() + 60_000), timestamp: at,
    contextVersion: version, policyVersion: null, diagnosis: null, cached: false, madeBySdk: false, raw: null });
  cache.put('a', decision('v1'));
  cache.put('b', decision('v1'));
  cache.put('c', decision('v1'));
  assert.equal(cache.size, 2);
  assert.equal(cache.get('a'), null); // least recently used went first
  cache.put('d', decision('v2')); // the live context changed: every v1 answer is dead
  assert.equal(cache.get('b'), null);
  assert.ok(cache.get('d'));
  cache.put('e', { ...decision('v2'), madeBySdk: true, decisionId: null });
  assert.equal(cache.get('e'), null);
  now += 60_000;
  assert.equal(cache.get('d'), null);
});

test("this service's own token: static, a file re-read on change, a failing source fails closed", async () => {
  const seen = /** @type {string[]} */ ([]);
  const server = await localServer((req, res) => {
    seen.push(String(req.headers.authorization));
    res.writeHead(503); res.end('{}');
  });
  const dir = mkdtempSync(join(tmpdir(), 'pdp-ts-'));
  try {
    await new PDPClient(server.url, { pepToken: staticToken(' static-token\n') }).authorize({ token: 't', action: 'read', resource: SALES });
    const file = join(dir, 'svid.jwt');
    writeFileSync(file, 'first-token\n');
    const client = new PDPClient(server.url, { pepToken: fileToken(file) });
    await client.authorize({ token: 't', action: 'read', resource: SALES });
    writeFileSync(join(dir, 'next'), 'second-token\n'); // as spiffe-helper rotates: a new file moved in
    renameSync(join(dir, 'next'), file);
    await client.authorize({ token: 't', action: 'read', resource: SALES });
    assert.deepEqual(seen, ['Bearer static-token', 'Bearer first-token', 'Bearer second-token']);

    rmSync(file);
    const d = await client.authorize({ token: 't', action: 'read', resource: SALES });
    assert.deepEqual(d.reasonCodes, [PDP_CREDENTIAL_UNAVAILABLE]);
    assert.equal(seen.length, 3, 'nothing is sent without the credential');
    writeFileSync(file, '\n'); // bad bytes: an empty token is no token
    assert.deepEqual((await client.authorize({ token: 't', action: 'read', resource: SALES })).reasonCodes, [PDP_CREDENTIAL_UNAVAILABLE]);
    assert.equal(seen.length, 3);
    const hanging = new PDPClient(server.url, { timeoutMs: 200, pepToken: () => new Promise(() => {}) });
    assert.deepEqual((await hanging.authorize({ token: 't', action: 'read', resource: SALES })).reasonCodes, [PDP_CREDENTIAL_UNAVAILABLE]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await server.close();
  }
});
