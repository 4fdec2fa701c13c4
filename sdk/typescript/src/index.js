// pdp-client for Node 20+: ask the PDP — may this workload do this action on this
// resource, right now? ESM, no runtime dependency; types in index.d.ts.

export { PDPClient, DEFAULT_TIMEOUT_MS, DEFAULT_URL, MAX_BATCH, resourceOf, subjectOf } from './client.js';
export { DecisionCache } from './cache.js';
export {
  IDENTITY_MISSING, PDP_CREDENTIAL_UNAVAILABLE, PDP_ERROR, PDP_REJECTED, PDP_UNREACHABLE,
  PDPError, REQUEST_NO_ROUTE, decisionFromJson, explain, failClosed,
} from './decision.js';
export {
  bearerToken, credentialFromHeaders, fileToken, isTrusted, staticToken, unfoldPem, xfccPem,
} from './credentials.js';
export {
  DEFAULT_EXCHANGE_TIMEOUT_MS, DEFAULT_REFRESH_BEFORE_S, ExchangeRefused, GRANT_TYPE, JWT_TOKEN_TYPE,
  TASK_DETAILS_TYPE, exchangeForm, exchangeToken,
} from './tasks.js';
export { matchRoute, route, segmentsOf } from './routes.js';
export { Guard, expressRequire, expressRoutes, fastifyRequire, fastifyRoutes } from './middleware.js';
