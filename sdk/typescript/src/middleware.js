// Protect an Express or Fastify service: one check for every way, as the Python SDK's
// FastAPI dependency and ASGI middleware do (pdp_client/guard.py).
//
// Take the caller's credential from the request, ask the PDP, and answer:
// - allowed: the request goes on, the decision in `req.pdpDecision` (Express) or
//   `request.pdpDecision` (Fastify);
// - **401** with a Bearer challenge when the caller presented no usable credential
//   (no credential, or one the PDP refused: an `identity.*` reason);
// - **403** for any other deny — a policy, or a PDP that could not answer (fail closed),
//   or (route tables) a request no route maps (`request.no_route`).
// The body is the decision's explanation: {decision, decision_id, reason_codes,
// explanation, reasons}; `x-pdp-decision-id` names the PDP's record.

import { credentialFromHeaders } from './credentials.js';
import { IDENTITY_MISSING, REQUEST_NO_ROUTE, explain, failClosed } from './decision.js';
import { resourceOf } from './client.js';
import { matchRoute } from './routes.js';

export class Guard {
  /**
   * @param {import('./client.js').PDPClient} client
   * @param {{ namespace?: string, trustedProxies?: readonly string[] }} [options]
   */
  constructor(client, { namespace, trustedProxies = [] } = {}) {
    this.client = client;
    this.namespace = namespace;
    this.trustedProxies = [...trustedProxies];
  }

  /**
   * The HTTP status the service should answer (200: go on) and the decision.
   * @param {import('./index.js').CheckRequest} request
   * @returns {Promise<{ status: 200 | 401 | 403, decision: import('./index.js').Decision }>}
   */
  async check({ headers, peer, action, resource, context, requestId }) {
    const credential = credentialFromHeaders(headers, peer, this.trustedProxies);
    if (credential === null) {
      return { status: 401, decision: failClosed(IDENTITY_MISSING,
        'Denied (identity.missing): present a credential (Authorization: Bearer <token>).') };
    }
    const decision = await this.client.authorize({
      ...credential, action, resource: resourceOf(resource, this.namespace), context, requestId,
    });
    if (decision.allowed) return { status: 200, decision };
    const identityFailed = decision.reasonCodes.some((c) => c.startsWith('identity.'));
    return { status: identityFailed ? 401 : 403, decision };
  }
}

/**
 * Express middleware authorizing `action` on `resource` (a value or a function of `req`).
 * @param {Guard} guard @param {string} action
 * @param {{ resource: import('./index.js').ResourceArg<any>, context?: import('./index.js').ContextArg<any> }} options
 */
export function expressRequire(guard, action, { resource, context }) {
  return async (/** @type {any} */ req, /** @type {any} */ res, /** @type {(e?: unknown) => void} */ next) => {
    try {
      const target = typeof resource === 'function' ? await resource(req) : resource;
      const ctx = typeof context === 'function' ? await context(req) : context;
      await expressDecide(guard, req, res, next, action, target, ctx);
    } catch (error) {
      next(error);
    }
  };
}

/**
 * Express middleware authorizing every request by a route table. `unmatched: 'allow'` lets
 * requests no route maps through (e.g. /healthz); by default they are denied (403).
 * @param {Guard} guard
 * @param {{ routes: readonly import('./index.js').RouteSpec[], unmatched?: 'deny' | 'allow' }} options
 */
export function expressRoutes(guard, { routes, unmatched = 'deny' }) {
  return async (/** @type {any} */ req, /** @type {any} */ res, /** @type {(e?: unknown) => void} */ next) => {
    try {
      const path = String(req.originalUrl ?? req.url);
      const found = matchRoute(routes, req.method, path);
      if (found === null) {
        if (unmatched === 'allow') { next(); return; }
        deny(res, 403, noRoute(req.method, path));
        return;
      }
      await expressDecide(guard, req, res, next, found.action, found.resource, found.context);
    } catch (error) {
      next(error);
    }
  };
}

/**
 * A Fastify `preHandler` hook authorizing `action` on `resource` (a value or a function of
 * the request).
 * @param {Guard} guard @param {string} action
 * @param {{ resource: import('./index.js').ResourceArg<any>, context?: import('./index.js').ContextArg<any> }} options
 */
export function fastifyRequire(guard, action, { resource, context }) {
  return async (/** @type {any} */ request, /** @type {any} */ reply) => {
    const target = typeof resource === 'function' ? await resource(request) : resource;
    const ctx = typeof context === 'function' ? await context(request) : context;
    return fastifyDecide(guard, request, reply, action, target, ctx);
  };
}

/**
 * A Fastify `onRequest` hook authorizing every request by a route table
 * (`app.addHook('onRequest', fastifyRoutes(guard, {routes}))`).
 * @param {Guard} guard
 * @param {{ routes: readonly import('./index.js').RouteSpec[], unmatched?: 'deny' | 'allow' }} options
 */
export function fastifyRoutes(guard, { routes, unmatched = 'deny' }) {
  return async (/** @type {any} */ request, /** @type {any} */ reply) => {
    const path = String(request.raw?.url ?? request.url);
    const found = matchRoute(routes, request.method, path);
    if (found === null) {
      if (unmatched === 'allow') return undefined;
      return sendFastify(reply, 403, noRoute(request.method, path));
    }
    return fastifyDecide(guard, request, reply, found.action, found.resource, found.context);
  };
}

/**
 * @param {Guard} guard @param {any} req @param {any} res @param {(e?: unknown) => void} next
 * @param {string} action @param {import('./index.js').ResourceLike} resource @param {Record<string, unknown> | undefined} context
 */
async function expressDecide(guard, req, res, next, action, resource, context) {
  const { status, decision } = await guard.check({
    headers: req.headers, peer: req.socket?.remoteAddress, action, resource, context,
    requestId: req.headers['x-request-id'],
  });
  if (status !== 200) { deny(res, status, decision); return; }
  req.pdpDecision = decision;
  next();
}

/**
 * @param {Guard} guard @param {any} request @param {any} reply @param {string} action
 * @param {import('./index.js').ResourceLike} resource @param {Record<string, unknown> | undefined} context
 */
async function fastifyDecide(guard, request, reply, action, resource, context) {
  const { status, decision } = await guard.check({
    headers: request.headers, peer: request.raw?.socket?.remoteAddress, action, resource,
    context, requestId: request.headers['x-request-id'],
  });
  if (status !== 200) return sendFastify(reply, status, decision);
  request.pdpDecision = decision;
  return undefined;
}

/** @param {any} res @param {number} status @param {import('./index.js').Decision} decision */
function deny(res, status, decision) {
  for (const [k, v] of Object.entries(denyHeaders(status, decision))) res.setHeader(k, v);
  res.status(status).json(explain(decision));
}

/** @param {any} reply @param {number} status @param {import('./index.js').Decision} decision */
function sendFastify(reply, status, decision) {
  return reply.code(status).headers(denyHeaders(status, decision)).send(explain(decision));
}

/** @param {number} status @param {import('./index.js').Decision} decision */
function denyHeaders(status, decision) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (status === 401) headers['www-authenticate'] = 'Bearer realm="pdp"';
  if (decision.decisionId) headers['x-pdp-decision-id'] = decision.decisionId;
  return headers;
}

/** @param {string} method @param {string} path */
function noRoute(method, path) {
  return failClosed(REQUEST_NO_ROUTE, `Denied: no route matches ${method} ${path.split('?', 1)[0]}.`);
}
