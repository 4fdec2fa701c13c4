// The client for the PDP's /v1/authorize, /v1/authorize/batch and AuthZEN endpoints.
//
// One rule for failure: when the PDP gives no decision — unreachable, slower than
// `timeoutMs`, a 5xx, an answer that is not a decision, or this service's own
// credential missing — the answer is a deny with the SDK's own reason code
// (pdp.unreachable, pdp.error, pdp.rejected, pdp.credential_unavailable), never an
// exception and never an allow. `onFailure: 'throw'` throws a PDPError instead.
//
// Node's own fetch (undici) does the HTTP; there is no runtime dependency.

import { DecisionCache } from './cache.js';
import {
  PDP_CREDENTIAL_UNAVAILABLE, PDP_ERROR, PDP_REJECTED, PDP_UNREACHABLE, PDPError,
  decisionFromJson, failClosed,
} from './decision.js';

export const DEFAULT_URL = 'http://127.0.0.1:8181';
export const DEFAULT_TIMEOUT_MS = 2000;
/** The PDP's limit of items per /v1/authorize/batch call. */
export const MAX_BATCH = 100;

export class PDPClient {
  /**
   * @param {string} [baseUrl]
   * @param {import('./index.js').ClientOptions} [options]
   */
  constructor(baseUrl = DEFAULT_URL, {
    timeoutMs = DEFAULT_TIMEOUT_MS, cache = null, pepToken = null, onFailure = 'deny',
    headers = {}, fetch: fetchImpl = globalThis.fetch,
  } = {}) {
    if (typeof fetchImpl !== 'function') throw new TypeError('no fetch: Node 20 or later is required');
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.cache = cache;
    this.pepToken = pepToken;
    this.onFailure = onFailure;
    this.headers = { ...headers };
    this.fetch = fetchImpl;
  }

  /**
   * May the holder of `token` (or `x509`) do `action` on `resource` now?
   * @param {import('./index.js').AuthorizeRequest} request
   * @returns {Promise<import('./index.js').Decision>}
   */
  async authorize({ token, x509, action, resource, context, explain, requestId }) {
    const subject = subjectOf(token, x509);
    const target = resourceOf(resource);
    const key = DecisionCache.key(subject, action, target, context);
    const cached = this.cache?.get(key);
    if (cached) return cached;
    try {
      const body = { subject, action, resource: target, context: context ?? {},
        ...(explain ? { explain: true } : {}) };
      const decision = decisionFromJson(await this.#post('/v1/authorize', body, requestId));
      this.cache?.put(key, decision);
      return decision;
    } catch (error) {
      return this.#failed(error);
    }
  }

  /**
   * Several questions for one subject, in order; the credential is verified once per call.
   * @param {import('./index.js').BatchRequest} request
   * @returns {Promise<import('./index.js').Decision[]>}
   */
  async authorizeBatch({ token, x509, items, requestId }) {
    const subject = subjectOf(token, x509);
    const questions = items.map((item) => ({
      action: item.action, resource: resourceOf(item.resource), context: item.context ?? {},
    }));
    const keys = questions.map((q) => DecisionCache.key(subject, q.action, q.resource, q.context));
    /** @type {(import('./index.js').Decision | null)[]} */
    const results = keys.map((k) => this.cache?.get(k) ?? null);
    const missing = results.flatMap((d, i) => (d === null ? [i] : []));
    for (let start = 0; start < missing.length; start += MAX_BATCH) {
      const chunk = missing.slice(start, start + MAX_BATCH);
      try {
        const answer = await this.#post('/v1/authorize/batch',
          { subject, items: chunk.map((i) => questions[i]) }, requestId);
        if (!Array.isArray(answer?.results) || answer.results.length !== chunk.length) {
          throw new PDPError(PDP_ERROR, 'the PDP\'s batch answer does not match the request', 200);
        }
        chunk.forEach((i, n) => {
          const decision = decisionFromJson(answer.results[n]);
          this.cache?.put(keys[i], decision);
          results[i] = decision;
        });
      } catch (error) {
        const denial = this.#failed(error);
        for (const i of chunk) results[i] = denial;
      }
    }
    return /** @type {import('./index.js').Decision[]} */ (results);
  }

  /**
   * AuthZEN 1.0 `POST /access/v1/evaluation`: `{decision: boolean, context?}`.
   * Fails closed as `{decision: false, context: {reason_codes: [code], made_by_sdk: true}}`.
   * @param {import('./index.js').AuthZenRequest} request
   * @param {{ requestId?: string }} [options]
   * @returns {Promise<import('./index.js').AuthZenDecision>}
   */
  async evaluation(request, { requestId } = {}) {
    try {
      const answer = await this.#post('/access/v1/evaluation', request, requestId);
      if (typeof answer?.decision !== 'boolean') {
        throw new PDPError(PDP_ERROR, 'the PDP\'s AuthZEN answer has no boolean decision', 200);
      }
      return answer;
    } catch (error) {
      return authzenFailed(this.#failed(error));
    }
  }

  /**
   * AuthZEN 1.0 `POST /access/v1/evaluations`: `{evaluations: [{decision, context?}]}`.
   * @param {import('./index.js').AuthZenBatchRequest} request
   * @param {{ requestId?: string }} [options]
   * @returns {Promise<{ evaluations: import('./index.js').AuthZenDecision[] }>}
   */
  async evaluations(request, { requestId } = {}) {
    const count = Math.max(request.evaluations?.length ?? 0, 1);
    try {
      const answer = await this.#post('/access/v1/evaluations', request, requestId);
      const list = answer?.evaluations;
      if (!Array.isArray(list) || list.some((e) => typeof e?.decision !== 'boolean')) {
        throw new PDPError(PDP_ERROR, 'the PDP\'s AuthZEN answer is not a list of decisions', 200);
      }
      return answer;
    } catch (error) {
      const denial = authzenFailed(this.#failed(error));
      return { evaluations: Array.from({ length: count }, () => denial) };
    }
  }

  /** @param {string} path @param {unknown} body @param {string | undefined} requestId */
  async #post(path, body, requestId) {
    const signal = AbortSignal.timeout(this.timeoutMs);
    /** @type {Record<string, string>} */
    const headers = { ...this.headers, 'content-type': 'application/json' };
    const pep = await this.#pepToken(signal);
    if (pep) headers.authorization = `Bearer ${pep}`;
    if (requestId) headers['x-request-id'] = requestId;
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method: 'POST', headers, body: JSON.stringify(body), signal,
      });
    } catch (error) {
      const why = signal.aborted ? `no answer within ${this.timeoutMs} ms` : describe(error);
      throw new PDPError(PDP_UNREACHABLE, `the PDP at ${this.baseUrl} could not be reached (${why})`);
    }
    let text;
    try {
      text = await response.text();
    } catch (error) {
      const why = signal.aborted ? `no answer within ${this.timeoutMs} ms` : describe(error);
      throw new PDPError(PDP_UNREACHABLE, `the PDP's answer was cut short (${why})`);
    }
    if (response.status !== 200) {
      const code = response.status >= 400 && response.status < 500 ? PDP_REJECTED : PDP_ERROR;
      throw new PDPError(code, `the PDP answered HTTP ${response.status}: ${problemDetail(text)}`, response.status);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new PDPError(PDP_ERROR, 'the PDP\'s answer is not JSON', 200);
    }
  }

  /** @param {AbortSignal} signal @returns {Promise<string | null>} */
  async #pepToken(signal) {
    const source = this.pepToken;
    if (source == null) return null;
    if (typeof source === 'string') return source;
    try {
      const token = await Promise.race([
        Promise.resolve(source()),
        new Promise((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      ]);
      if (typeof token !== 'string' || !token) throw new Error('the token source gave no token');
      return token;
    } catch (error) {
      throw new PDPError(PDP_CREDENTIAL_UNAVAILABLE,
        `this service's own credential could not be had (${describe(error)})`);
    }
  }

  /** @param {unknown} error @returns {import('./index.js').Decision} */
  #failed(error) {
    const e = error instanceof PDPError ? error : new PDPError(PDP_ERROR, describe(error));
    if (this.onFailure === 'throw') throw e;
    if (typeof this.onFailure === 'function') return this.onFailure(e);
    return failClosed(e.code, `Denied (${e.code}): ${e.message}; failing closed.`);
  }
}

/**
 * The `subject` member: a bearer JWT or an X.509-SVID PEM chain, exactly one.
 * @param {string | undefined} token @param {string | undefined} x509
 * @returns {Record<string, string>}
 */
export function subjectOf(token, x509) {
  if (token != null && x509 == null) return { token };
  if (x509 != null && token == null) return { x509 };
  throw new TypeError('give exactly one of token and x509');
}

/**
 * A resource from `{type, id, attrs?, parents?}` or a `[type, id]` pair; `namespace`
 * prefixes a bare type (`Dataset` -> `App::Dataset`).
 * @param {import('./index.js').ResourceLike} value @param {string} [namespace]
 * @returns {import('./index.js').Resource}
 */
export function resourceOf(value, namespace) {
  /** @type {import('./index.js').Resource} */
  let resource;
  if (Array.isArray(value) && value.length === 2) {
    resource = { type: String(value[0]), id: String(value[1]) };
  } else if (value && typeof value === 'object' && 'type' in value && 'id' in value) {
    const v = /** @type {import('./index.js').Resource} */ (value);
    resource = { type: String(v.type), id: String(v.id),
      ...(v.attrs !== undefined ? { attrs: v.attrs } : {}),
      ...(v.parents?.length ? { parents: v.parents } : {}) };
  } else {
    throw new TypeError(`not a resource: ${JSON.stringify(value)}; give {type, id} or [type, id]`);
  }
  if (namespace && !resource.type.includes('::')) resource.type = `${namespace}::${resource.type}`;
  return resource;
}

/** @param {import('./index.js').Decision} denial @returns {import('./index.js').AuthZenDecision} */
function authzenFailed(denial) {
  return { decision: false, context: { reason_codes: denial.reasonCodes, explanation: denial.explanation, made_by_sdk: true } };
}

/** @param {string} text */
function problemDetail(text) {
  try {
    const body = JSON.parse(text);
    return String(body.detail ?? body.title ?? text).slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}

/** @param {unknown} error */
function describe(error) {
  if (error instanceof Error) {
    const cause = /** @type {any} */ (error).cause;
    return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  }
  return String(error);
}
