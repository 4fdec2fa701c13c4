// Types of pdp-client (hand-written beside the JavaScript; `npm run typecheck` checks the
// sources against them with tsc --checkJs).

/** A Cedar entity: `{type: "App::Dataset", id: "sales-daily"}`; attrs/parents for a
 * resource the bundle does not define (the PDP checks them against its schema). */
export interface Resource {
  type: string;
  id: string;
  attrs?: Record<string, unknown>;
  parents?: { type: string; id: string }[];
}
export type ResourceLike = Resource | readonly [string, string];

export interface Reason {
  policy: string;
  effect: string;
  message: string;
  advice?: string;
}

/** The PDP's answer (or the SDK's own fail-closed deny, `madeBySdk`). Read `allowed`. */
export interface Decision {
  decision: 'allow' | 'deny';
  allowed: boolean;
  decisionId: string | null;
  reasonCodes: string[];
  explanation: string;
  reasons: Reason[];
  principal: string | null;
  action: string | null;
  resource: string | null;
  /** Stop caching the answer then (never later than the credential's expiry). */
  validUntil: Date | null;
  timestamp: Date | null;
  contextVersion: string | null;
  policyVersion: Record<string, unknown> | null;
  /** On a deny (or with `explain: true`): the conditions Cedar evaluated and the values read. */
  diagnosis: unknown[] | null;
  cached: boolean;
  madeBySdk: boolean;
  raw: Record<string, unknown> | null;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** Longest wait for a decision, including `pepToken` (default 2000). */
  timeoutMs?: number;
  cache?: DecisionCache | null;
  /** This service's own credential, sent as `Authorization: Bearer` (the PDP's `pep_allowlist`). */
  pepToken?: TokenSource | null;
  /** 'deny' (default): a fail-closed deny; 'throw': a PDPError; or build your own Decision. */
  onFailure?: 'deny' | 'throw' | ((error: PDPError) => Decision);
  headers?: Record<string, string>;
  fetch?: typeof globalThis.fetch;
}

export type Subject = { token: string; x509?: undefined } | { x509: string; token?: undefined };

export type AuthorizeRequest = Subject & {
  action: string;
  resource: ResourceLike;
  context?: Record<string, unknown>;
  explain?: boolean;
  requestId?: string;
};

export interface BatchItem {
  action: string;
  resource: ResourceLike;
  context?: Record<string, unknown>;
}
export type BatchRequest = Subject & { items: readonly BatchItem[]; requestId?: string };

export interface AuthZenEntity {
  type: string;
  id: string;
  properties?: Record<string, unknown>;
}
export interface AuthZenRequest {
  subject: AuthZenEntity;
  action: { name: string; properties?: Record<string, unknown> };
  resource: AuthZenEntity;
  context?: Record<string, unknown>;
  options?: Record<string, unknown>;
}
export interface AuthZenBatchRequest extends Partial<AuthZenRequest> {
  evaluations?: Partial<AuthZenRequest>[];
}
export interface AuthZenDecision {
  decision: boolean;
  context?: Record<string, unknown>;
}

export declare const DEFAULT_URL: string;
export declare const DEFAULT_TIMEOUT_MS: number;
export declare const MAX_BATCH: number;

export declare class PDPClient {
  constructor(baseUrl?: string, options?: ClientOptions);
  readonly baseUrl: string;
  timeoutMs: number;
  cache: DecisionCache | null;
  pepToken: TokenSource | null;
  onFailure: 'deny' | 'throw' | ((error: PDPError) => Decision);
  headers: Record<string, string>;
  fetch: typeof globalThis.fetch;
  authorize(request: AuthorizeRequest): Promise<Decision>;
  authorizeBatch(request: BatchRequest): Promise<Decision[]>;
  evaluation(request: AuthZenRequest, options?: { requestId?: string }): Promise<AuthZenDecision>;
  evaluations(request: AuthZenBatchRequest, options?: { requestId?: string }): Promise<{ evaluations: AuthZenDecision[] }>;
}

export declare function subjectOf(token: string | undefined, x509: string | undefined): Record<string, string>;
export declare function resourceOf(value: ResourceLike, namespace?: string): Resource;

export declare class DecisionCache {
  constructor(options?: { maxEntries?: number; maxAgeMs?: number | null; now?: () => number });
  maxEntries: number;
  maxAgeMs: number | null;
  now: () => number;
  entries: Map<string, { decision: Decision; expiresAt: number; version: string | null }>;
  version: string | null;
  hits: number;
  misses: number;
  readonly size: number;
  static key(subject: Record<string, string>, action: string, resource: Resource, context: Record<string, unknown> | undefined): string;
  observeVersion(version: string | null): void;
  get(key: string): Decision | null;
  put(key: string, decision: Decision): void;
}

export declare const PDP_UNREACHABLE: 'pdp.unreachable';
export declare const PDP_ERROR: 'pdp.error';
export declare const PDP_REJECTED: 'pdp.rejected';
export declare const PDP_CREDENTIAL_UNAVAILABLE: 'pdp.credential_unavailable';
export declare const IDENTITY_MISSING: 'identity.missing';
export declare const REQUEST_NO_ROUTE: 'request.no_route';

export declare class PDPError extends Error {
  constructor(code: string, message: string, status?: number | null);
  code: string;
  status: number | null;
}
export declare function decisionFromJson(data: any): Decision;
export declare function failClosed(code: string, explanation: string): Decision;
export declare function explain(decision: Decision): {
  decision: 'allow' | 'deny'; decision_id: string | null; reason_codes: string[];
  explanation: string; reasons: { policy: string; effect: string; message: string; advice?: string }[];
};

export declare function staticToken(token: string): () => string;
export declare function fileToken(path: string): () => Promise<string>;
export declare function bearerToken(value: string | undefined): string | null;
export declare function isTrusted(peer: string | null | undefined, trustedProxies: readonly string[]): boolean;
export declare function xfccPem(header: string): string | null;
export declare function unfoldPem(value: string): string;
export declare function credentialFromHeaders(
  headers: Record<string, string | string[] | undefined>, peer: string | null | undefined,
  trustedProxies: readonly string[]): { token: string } | { x509: string } | null;

/** What `exchangeToken` asks the broker for (docs/agents.md). */
export interface ExchangeOptions {
  /** The PDP (its `POST /v1/token`). */
  url: string;
  /** The agent's own credential (a delegated agent: its delegator's task credential). */
  subjectToken: TokenSource;
  /** The one service the credential is for, e.g. `pdp` or a SPIFFE ID. */
  audience: string;
  /** The scopes the task needs; omitted: at most what the subject token carries. */
  scope?: readonly string[] | null;
  /** `id` optional (the broker makes one); `purpose` required to open a task. */
  task?: { id?: string; purpose?: string };
  /** Omitted: the longest the broker and policies allow. */
  lifetimeS?: number | null;
  /** Delegation: the acting agent's own credential (RFC 8693 `actor_token`). */
  actorToken?: TokenSource | null;
  /** Exchange again when less than this is left (default 60). */
  refreshBeforeS?: number;
  /** Longest wait for one exchange (default 5000). */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Milliseconds since the epoch (default `Date.now`). */
  now?: () => number;
}

/** An issued task credential; `expiresAt` in ms on the source's `now` clock. */
export interface TaskToken {
  accessToken: string;
  expiresIn: number;
  scope: string[];
  taskId: string;
  decisionId: string | null;
  expiresAt: number;
}

/** A token source (`pepToken`, or a subject's `token`) holding a task credential. */
export interface ExchangedTokenSource {
  /** A credential valid for at least `refreshBeforeS` more; rejects with ExchangeRefused or PDPError. */
  (): Promise<string>;
  /** Complete the task: every credential issued for it is refused from the next request on. */
  complete(): Promise<void>;
  readonly taskId: string | null;
  readonly current: TaskToken | null;
  /** Why the last exchange gave no credential (null after a success). */
  readonly lastError: Error | null;
}

export declare class ExchangeRefused extends Error {
  constructor(answer: { error: string; description: string; decisionId: string | null; reasonCodes: string[]; status: number });
  /** RFC 6749: invalid_request, invalid_target, invalid_scope, access_denied, ... */
  error: string;
  description: string;
  decisionId: string | null;
  reasonCodes: string[];
  status: number;
}

export declare const GRANT_TYPE: 'urn:ietf:params:oauth:grant-type:token-exchange';
export declare const JWT_TOKEN_TYPE: 'urn:ietf:params:oauth:token-type:jwt';
export declare const TASK_DETAILS_TYPE: 'urn:pdp:task';
export declare const DEFAULT_REFRESH_BEFORE_S: number;
export declare const DEFAULT_EXCHANGE_TIMEOUT_MS: number;
export declare function exchangeForm(ask: {
  subjectToken: string; audience: string; scope?: readonly string[] | null; actorToken?: string | null;
  taskId?: string | null; purpose?: string | null; lifetimeS?: number | null }): URLSearchParams;
export declare function exchangeToken(options: ExchangeOptions): ExchangedTokenSource;

/** A route of the table: the same shape as `[[routes]]` in pdp.toml. */
export interface RouteSpec {
  method?: string;
  path: string;
  action: string;
  resource_type: string;
  resource_id: string;
  context?: Record<string, string>;
}
export interface RouteMatch {
  action: string;
  resource: Resource;
  context: Record<string, string>;
  params: Record<string, string>;
}
export declare function route(spec: RouteSpec): Required<RouteSpec>;
export declare function segmentsOf(path: string): string[] | null;
export declare function matchRoute(routes: readonly RouteSpec[], method: string, path: string): RouteMatch | null;

export type ResourceArg<Req> = ResourceLike | ((req: Req) => ResourceLike | Promise<ResourceLike>);
export type ContextArg<Req> = Record<string, unknown> | undefined | ((req: Req) => Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>);
export interface CheckRequest {
  headers: Record<string, string | string[] | undefined>;
  peer: string | null | undefined;
  action: string;
  resource: ResourceLike;
  context?: Record<string, unknown>;
  requestId?: string;
}

export declare class Guard {
  constructor(client: PDPClient, options?: { namespace?: string; trustedProxies?: readonly string[] });
  client: PDPClient;
  namespace: string | undefined;
  trustedProxies: string[];
  check(request: CheckRequest): Promise<{ status: 200 | 401 | 403; decision: Decision }>;
}

type Middleware = (req: any, res: any, next: (error?: unknown) => void) => Promise<void>;
type FastifyHook = (request: any, reply: any) => Promise<unknown>;
export declare function expressRequire(guard: Guard, action: string, options: { resource: ResourceArg<any>; context?: ContextArg<any> }): Middleware;
export declare function expressRoutes(guard: Guard, options: { routes: readonly RouteSpec[]; unmatched?: 'deny' | 'allow' }): Middleware;
export declare function fastifyRequire(guard: Guard, action: string, options: { resource: ResourceArg<any>; context?: ContextArg<any> }): FastifyHook;
export declare function fastifyRoutes(guard: Guard, options: { routes: readonly RouteSpec[]; unmatched?: 'deny' | 'allow' }): FastifyHook;
