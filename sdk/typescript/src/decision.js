// The decision the PDP answers, and the deny the SDK gives itself when there is none.
//
// A Decision mirrors the PDP's /v1/authorize answer (README "HTTP API"), in camelCase,
// plus `cached` and `madeBySdk`. A deny is never an exception: read `allowed`.

/** The PDP could not be reached, or did not answer within the timeout. */
export const PDP_UNREACHABLE = 'pdp.unreachable';
/** The PDP answered 5xx, or something that is not a decision. */
export const PDP_ERROR = 'pdp.error';
/** The PDP refused the request as sent (4xx). */
export const PDP_REJECTED = 'pdp.rejected';
/** This service's own credential (`pepToken`) could not be had: nothing was sent. */
export const PDP_CREDENTIAL_UNAVAILABLE = 'pdp.credential_unavailable';
/** (middleware) the caller presented no credential. */
export const IDENTITY_MISSING = 'identity.missing';
/** (middleware) no route maps the request to an action and resource. */
export const REQUEST_NO_ROUTE = 'request.no_route';

/** Why the SDK could not get a decision; `code` is the fail-closed reason code. */
export class PDPError extends Error {
  /** @param {string} code @param {string} message @param {number | null} [status] */
  constructor(code, message, status = null) {
    super(message);
    this.name = 'PDPError';
    this.code = code;
    this.status = status;
  }
}

/**
 * Parse a /v1/authorize answer (or one batch result); throws when it is not a decision.
 * @param {any} data
 * @returns {import('./index.js').Decision}
 */
export function decisionFromJson(data) {
  if (data === null || typeof data !== 'object' || !['allow', 'deny'].includes(data.decision)) {
    throw new PDPError(PDP_ERROR, `the PDP's answer is not a decision: ${JSON.stringify(data)?.slice(0, 200)}`, 200);
  }
  const live = data.context && typeof data.context === 'object' ? data.context : {};
  return {
    decision: data.decision,
    allowed: data.decision === 'allow',
    decisionId: typeof data.decision_id === 'string' ? data.decision_id : null,
    reasonCodes: Array.isArray(data.reason_codes) ? data.reason_codes.map(String) : [],
    explanation: typeof data.explanation === 'string' ? data.explanation : '',
    reasons: Array.isArray(data.reasons)
      ? data.reasons.map((/** @type {any} */ r) => ({
        policy: String(r.policy), effect: String(r.effect), message: String(r.message),
        ...(r.advice ? { advice: String(r.advice) } : {}),
      }))
      : [],
    principal: data.principal ?? null,
    action: data.action ?? null,
    resource: data.resource ?? null,
    validUntil: parseTime(data.valid_until),
    timestamp: parseTime(data.timestamp),
    contextVersion: live.version != null ? String(live.version) : null,
    policyVersion: data.policy_version ?? null,
    diagnosis: data.diagnosis ?? null,
    cached: false,
    madeBySdk: false,
    raw: data,
  };
}

/**
 * A deny the SDK makes itself: the PDP gave no decision (or none could be asked).
 * @param {string} code @param {string} explanation
 * @returns {import('./index.js').Decision}
 */
export function failClosed(code, explanation) {
  return {
    decision: 'deny', allowed: false, decisionId: null, reasonCodes: [code], explanation,
    reasons: [], principal: null, action: null, resource: null, validUntil: null,
    timestamp: null, contextVersion: null, policyVersion: null, diagnosis: null,
    cached: false, madeBySdk: true, raw: null,
  };
}

/**
 * What a service hands its caller in a 401/403 body (as the Python SDK's `as_dict`).
 * @param {import('./index.js').Decision} d
 */
export function explain(d) {
  return {
    decision: d.decision, decision_id: d.decisionId, reason_codes: d.reasonCodes,
    explanation: d.explanation,
    reasons: d.reasons.map((r) => ({ policy: r.policy, effect: r.effect, message: r.message,
      ...(r.advice ? { advice: r.advice } : {}) })),
  };
}

/** @param {unknown} value @returns {Date | null} */
function parseTime(value) {
  if (typeof value !== 'string' || !value) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at;
}
