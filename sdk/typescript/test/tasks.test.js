// exchangeToken against the credential broker of a real `pdp serve --dev` (PDP_BROKER_URL,
// always in business hours, with agents' JWT-SVIDs in PDP_AGENT_SVIDS): the issued
// credential works at /v1/authorize, is reused and then refreshed, a refusal surfaces and
// fails closed, completing the task kills it; and local servers that answer badly.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ExchangeRefused, PDP_CREDENTIAL_UNAVAILABLE, PDP_ERROR, PDP_UNREACHABLE, PDPClient, PDPError,
  exchangeToken,
} from '../src/index.js';
import { countingFetch, deadUrl, localServer } from './helpers.js';

const BROKER_URL = process.env.PDP_BROKER_URL ?? '';
/** @type {Record<string, string>} */
const SVIDS = JSON.parse(process.env.PDP_AGENT_SVIDS ?? '{}');
const SVID = SVIDS['spiffe://example.org/agents/planner'] ?? '';
const SUMMARIZER_SVID = SVIDS['spiffe://example.org/agents/summarizer'] ?? '';
const needsBroker = BROKER_URL && SVID ? {} : { skip: 'PDP_BROKER_URL is not set: run through tests/sdk/test_typescript_sdk.py' };
const SALES = { type: 'App::Dataset', id: 'sales-daily' };
const READ = { url: BROKER_URL, subjectToken: SVID, audience: 'pdp', scope: ['datasets:read'] };

test('the issued credential is allowed at /v1/authorize, reused, and exchanged once for concurrent calls', needsBroker, async () => {
  const { fetch, calls } = countingFetch();
  const task = exchangeToken({ ...READ, task: { purpose: 'read sales (ts sdk)' }, fetch });
  assert.equal(task.taskId, null);
  const [a, b] = await Promise.all([task(), task()]);
  assert.equal(a, b);
  assert.equal(await task(), a);
  assert.equal(calls.count, 1, 'one exchange for three calls');
  assert.ok(task.taskId?.startsWith('task-'));
  assert.deepEqual(task.current?.scope, ['datasets:read']);
  assert.ok(task.current?.decisionId);
  const decision = await new PDPClient(BROKER_URL).authorize({ token: a, action: 'read', resource: SALES });
  assert.equal(decision.allowed, true, decision.explanation);
  await task.complete();
});

test('a credential near its expiry is exchanged again, in the same task', needsBroker, async () => {
  let clock = Date.now();
  const { fetch, calls } = countingFetch();
  const task = exchangeToken({ ...READ, task: { purpose: 'refresh (ts sdk)' }, lifetimeS: 60,
    refreshBeforeS: 10, fetch, now: () => clock });
  const first = await task();
  assert.equal(task.current?.expiresIn, 60);
  clock += 49_000; // 11 s left: still fresh
  assert.equal(await task(), first);
  const taskId = task.taskId;
  clock += 2_000; // 9 s left: due
  const second = await task();
  assert.notEqual(second, first);
  assert.equal(calls.count, 2);
  assert.equal(task.taskId, taskId);
  const decision = await new PDPClient(BROKER_URL).authorize({ token: second, action: 'read', resource: SALES });
  assert.equal(decision.allowed, true, decision.explanation);
  await task.complete();
});

test('a widened scope is refused with the decision, and a client using the source fails closed', needsBroker, async () => {
  const task = exchangeToken({ ...READ, scope: ['datasets:write'], task: { purpose: 'try to write (ts sdk)' } });
  const refused = await task().then(() => null, (e) => e);
  assert.ok(refused instanceof ExchangeRefused, String(refused));
  assert.ok(['access_denied', 'invalid_scope'].includes(refused.error), refused.error);
  assert.equal(refused.status, 403);
  assert.deepEqual(refused.reasonCodes, ['policy.no_permit']);
  assert.ok(refused.decisionId);
  assert.match(refused.description, /^Denied: no policy permits/);
  assert.equal(task.current, null);
  assert.equal(task.lastError, refused);

  const pdp = new PDPClient(BROKER_URL, { pepToken: task, timeoutMs: 10_000 });
  const decision = await pdp.authorize({ token: SVID, action: 'read', resource: SALES });
  assert.equal(decision.allowed, false);
  assert.deepEqual(decision.reasonCodes, [PDP_CREDENTIAL_UNAVAILABLE]);
  assert.ok(decision.madeBySdk);
  assert.match(decision.explanation, /access_denied/);
});

test('complete() revokes: the credential is denied next, and the source gives no other', needsBroker, async () => {
  const task = exchangeToken({ ...READ, task: { purpose: 'complete me (ts sdk)' } });
  const token = await task();
  const pdp = new PDPClient(BROKER_URL);
  assert.equal((await pdp.authorize({ token, action: 'read', resource: SALES })).allowed, true);
  await task.complete();
  assert.equal(task.current, null);
  const after = await pdp.authorize({ token, action: 'read', resource: SALES });
  assert.equal(after.allowed, false);
  assert.ok(!after.madeBySdk && after.reasonCodes.some((c) => c.startsWith('identity.')), after.reasonCodes.join());
  const again = await task().then(() => null, (e) => e);
  assert.ok(again instanceof ExchangeRefused, String(again));
  assert.deepEqual(again.reasonCodes, ['broker.task_closed']);
});

test('delegation: a narrower credential of the actor\'s own in the same task, dead when the owner completes it', needsBroker, async () => {
  const planner = exchangeToken({ ...READ, task: { purpose: 'delegate (ts sdk)' } });
  const summarizer = exchangeToken({ ...READ, subjectToken: planner, actorToken: SUMMARIZER_SVID });
  const delegated = await summarizer();
  assert.notEqual(delegated, await planner());
  assert.equal(summarizer.taskId, planner.taskId);
  await planner.complete();
  const after = await new PDPClient(BROKER_URL).authorize({ token: delegated, action: 'read', resource: SALES });
  assert.equal(after.allowed, false);
  assert.ok(after.reasonCodes.some((c) => c.startsWith('identity.')), after.reasonCodes.join());
});

test('an unreachable broker or an answer that is not one rejects, caches nothing, and is retried', async () => {
  const down = exchangeToken({ url: await deadUrl(), subjectToken: 'x', audience: 'pdp', task: { purpose: 'p' } });
  const e = await down().then(() => null, (err) => err);
  assert.ok(e instanceof PDPError && e.code === PDP_UNREACHABLE, String(e));

  let answers = 0;
  /** @type {URLSearchParams[]} */
  const forms = [];
  const server = await localServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      forms.push(new URLSearchParams(body));
      answers += 1;
      if (answers === 1) { res.writeHead(200, { 'content-type': 'application/json' }); res.end('\xff not json'); return; }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `t${answers}`, expires_in: 300, scope: 'a b', task_id: 'T-9', decision_id: 'd' }));
    });
  });
  try {
    const task = exchangeToken({ url: server.url, subjectToken: () => 'svid', audience: 'aud', scope: ['a', 'b'],
      task: { id: 'T-9', purpose: 'why' }, lifetimeS: 300 });
    const bad = await task().then(() => null, (err) => err);
    assert.ok(bad instanceof PDPError && bad.code === PDP_ERROR, String(bad));
    assert.equal(task.current, null);
    assert.equal(await task(), 't2');
    assert.equal(task.lastError, null);
    const form = forms[1];
    assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
    assert.equal(form.get('subject_token'), 'svid');
    assert.equal(form.get('scope'), 'a b');
    assert.deepEqual(JSON.parse(form.get('authorization_details') ?? ''),
      [{ type: 'urn:pdp:task', task_id: 'T-9', purpose: 'why', lifetime_s: 300 }]);
  } finally {
    await server.close();
  }
});

test('exchangeToken refuses options that could never work', () => {
  assert.throws(() => exchangeToken({ url: '', subjectToken: 'x', audience: 'pdp', task: { purpose: 'p' } }), TypeError);
  assert.throws(() => exchangeToken({ url: 'http://x', subjectToken: 'x', audience: 'pdp' }), /purpose/);
});
