// Task credentials from the PDP's credential broker (RFC 8693 token exchange at
// `POST /v1/token`, docs/agents.md): the Node twin of the Python SDK's `TaskCredentials`
// (sdk/python/pdp_client/tasks.py), with the same rules.
//
// An agent trades its own credential (a JWT-SVID, itself a token source) for one scoped to
// a task: one audience, the scopes the task needs, a lifetime of minutes. `exchangeToken`
// returns a token source — usable as `pepToken` or as the `token` of an authorize call —
// that exchanges on first use, hands out the same credential while it has more than
// `refreshBeforeS` left, and exchanges again after. Calls made while an exchange is under
// way share it (one request, one credential). A refused exchange rejects with
// `ExchangeRefused` (the RFC 6749 `error`, the PDP's sentence, the recorded decision id and
// reason codes) and caches nothing, so a `PDPClient` using the source as `pepToken` fails
// closed with `pdp.credential_unavailable`, as with a missing token file. `complete()`
// ends the task: every credential issued for it is refused from the next request on.

import { PDP_ERROR, PDP_UNREACHABLE, PDPError } from './decision.js';

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const TASK_DETAILS_TYPE = 'urn:pdp:task';
export const DEFAULT_REFRESH_BEFORE_S = 60;
/** An exchange signs and records a decision: allow it longer than a decision. */
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 5000;

/** The broker refused the exchange: an RFC 6749 §5.2 error answer, with the decision. */
export class ExchangeRefused extends Error {
  /**
   * @param {{ error: string, description: string, decisionId: string | null,
   *   reasonCodes: string[], status: number }} answer
   */
  constructor({ error, description, decisionId, reasonCodes, status }) {
    super(`the broker refused the exchange (${error}): ${description}`);
    this.name = 'ExchangeRefused';
    this.error = error;
    this.description = description;
    this.decisionId = decisionId;
    this.reasonCodes = reasonCodes;
    this.status = status;
  }
}

/**
 * The RFC 8693 form of one exchange; the task rides in RFC 9396 `authorization_details`.
 * @param {{ subjectToken: string, audience: string, scope?: readonly string[] | null,
 *   actorToken?: string | null, taskId?: string | null, purpose?: string | null,
 *   lifetimeS?: number | null }} ask
 * @returns {URLSearchParams}
 */
export function exchangeForm({ subjectToken, audience, scope, actorToken, taskId, purpose, lifetimeS }) {
  const form = new URLSearchParams({
    grant_type: GRANT_TYPE, subject_token: subjectToken, subject_token_type: JWT_TOKEN_TYPE, audience,
  });
  if (scope != null) form.set('scope', scope.join(' '));
  if (actorToken != null) {
    form.set('actor_token', actorToken);
    form.set('actor_token_type', JWT_TOKEN_TYPE);
  }
  /** @type {Record<string, unknown>} */
  const task = { type: TASK_DETAILS_TYPE };
  if (taskId != null) task.task_id = taskId;
  if (purpose != null) task.purpose = purpose;
  if (lifetimeS != null) task.lifetime_s = lifetimeS;
  if (Object.keys(task).length > 1) form.set('authorization_details', JSON.stringify([task]));
  return form;
}

/**
 * A token source holding a task credential from the broker at `url`.
 * @param {import('./index.js').ExchangeOptions} options
 * @returns {import('./index.js').ExchangedTokenSource}
 */
export function exchangeToken({
  url, subjectToken, audience, scope = null, task = {}, lifetimeS = null, actorToken = null,
  refreshBeforeS = DEFAULT_REFRESH_BEFORE_S, timeoutMs = DEFAULT_EXCHANGE_TIMEOUT_MS,
  fetch: fetchImpl = globalThis.fetch, now = Date.now,
}) {
  if (typeof url !== 'string' || !url) throw new TypeError('exchangeToken needs the PDP\'s url');
  if (typeof audience !== 'string' || !audience) throw new TypeError('exchangeToken needs an audience');
  if (subjectToken == null) throw new TypeError('exchangeToken needs a subjectToken (a token source)');
  if (actorToken == null && !task.purpose && !task.id) {
    // The broker opens a task only with a purpose; say so here rather than at first use.
    throw new TypeError('exchangeToken needs task.purpose (or the task.id of an open task)');
  }
  const base = url.replace(/\/+$/, '');
  /** @type {import('./index.js').TaskToken | null} */
  let current = null;
  /** @type {Promise<string> | null} */
  let inFlight = null;
  let taskId = task.id ?? null;
  /** @type {Error | null} */
  let lastError = null;

  /** The exchange itself; keeps the answer, or the reason there is none. */
  const exchange = async () => {
    const form = exchangeForm({
      subjectToken: await read(subjectToken, 'subjectToken'), audience, scope, taskId, lifetimeS,
      // A delegated agent joins its delegator's task, which already has its purpose.
      purpose: actorToken == null ? task.purpose ?? null : null,
      actorToken: actorToken == null ? null : await read(actorToken, 'actorToken'),
    });
    const { status, body } = await post(`${base}/v1/token`, form, {}, timeoutMs, fetchImpl);
    const receivedAt = now();
    if (status === 200 && typeof body?.access_token === 'string' && Number.isFinite(Number(body.expires_in))) {
      const expiresIn = Number(body.expires_in);
      current = {
        accessToken: body.access_token, expiresIn, scope: String(body.scope ?? '').split(' ').filter(Boolean),
        taskId: String(body.task_id), decisionId: body.decision_id ?? null,
        expiresAt: receivedAt + expiresIn * 1000,
      };
      taskId = current.taskId;
      return current.accessToken;
    }
    if (typeof body?.error === 'string') {
      throw new ExchangeRefused({
        error: body.error, description: String(body.error_description ?? ''),
        decisionId: body.decision_id ?? null,
        reasonCodes: Array.isArray(body.reason_codes) ? body.reason_codes.map(String) : [], status,
      });
    }
    throw new PDPError(PDP_ERROR, `the PDP answered HTTP ${status} to an exchange`, status);
  };

  const source = /** @type {import('./index.js').ExchangedTokenSource} */ (async () => {
    if (current !== null && now() + refreshBeforeS * 1000 < current.expiresAt) return current.accessToken;
    inFlight ??= exchange().then(
      (token) => { lastError = null; return token; },
      (/** @type {Error} */ error) => { current = null; lastError = error; throw error; },
    ).finally(() => { inFlight = null; });
    return inFlight;
  });

  Object.defineProperties(source, {
    taskId: { get: () => taskId, enumerable: true },
    current: { get: () => current, enumerable: true },
    lastError: { get: () => lastError, enumerable: true },
  });
  /** Complete the task now: every credential issued for it dies (only the task's owner may). */
  source.complete = async () => {
    if (taskId === null) return; // nothing was issued, no task named: nothing to complete
    const id = taskId;
    const authorization = `Bearer ${await read(subjectToken, 'subjectToken')}`;
    const { status } = await post(`${base}/v1/tasks/${encodeURIComponent(id)}/complete`, null,
      { authorization }, timeoutMs, fetchImpl);
    // What was cached is revoked now: the next call asks the broker, which refuses a closed task.
    current = null;
    if (status !== 200) throw new PDPError(PDP_ERROR, `completing task ${id}: HTTP ${status}`, status);
  };
  return source;
}

/**
 * POST to the PDP; `{status, body}` with the JSON body (null when it is not JSON).
 * @param {string} target @param {URLSearchParams | null} form @param {Record<string, string>} headers
 * @param {number} timeoutMs @param {typeof fetch} fetchImpl
 * @returns {Promise<{ status: number, body: any }>}
 */
async function post(target, form, headers, timeoutMs, fetchImpl) {
  const signal = AbortSignal.timeout(timeoutMs);
  let response;
  let text;
  try {
    response = await fetchImpl(target, { method: 'POST', headers, body: form, signal });
    text = await response.text();
  } catch (error) {
    const why = signal.aborted ? `no answer within ${timeoutMs} ms` : String(/** @type {any} */ (error)?.cause ?? error);
    throw new PDPError(PDP_UNREACHABLE, `the PDP at ${target} could not be reached (${why})`);
  }
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: null };
  }
}

/** The token a source gives now (a string, or a function returning one). @param {import('./index.js').TokenSource} source @param {string} name */
async function read(source, name) {
  const token = typeof source === 'string' ? source : await source();
  if (typeof token !== 'string' || !token) throw new Error(`${name} gave no token`);
  return token;
}
