// A route table: method + path pattern -> action on a resource (the middleware's map).
//
// The same rules as the PDP's gateway routes (`[[routes]]` in pdp.toml) and the Python
// SDK's pdp_client/routes.py (sdk/fixtures/routes.json: the three must agree): `{name}`
// matches one non-empty path segment, routes are tried in order and the first match
// wins, templates may use the path parameters and `{method}`, and a path with `.`/`..`
// or empty segments, an encoded `/` or `\`, or a control character matches nothing.

const PARAM = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const WHOLE_PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/**
 * Check a route and fill in its defaults (`method` "*", `context` {}).
 * @param {import('./index.js').RouteSpec} spec @returns {Required<import('./index.js').RouteSpec>}
 */
export function route(spec) {
  const r = { method: spec.method ?? '*', context: spec.context ?? {}, path: spec.path,
    action: spec.action, resource_type: spec.resource_type, resource_id: spec.resource_id };
  if (!r.path.startsWith('/')) throw new Error(`route path ${JSON.stringify(r.path)} must start with '/'`);
  const known = new Set(['method']);
  for (const segment of r.path.slice(1).split('/')) {
    const m = WHOLE_PARAM.exec(segment);
    if (m) known.add(m[1]);
  }
  for (const template of [r.resource_id, ...Object.values(r.context)]) {
    const unknown = [...template.matchAll(PARAM)].map((m) => m[1]).filter((n) => !known.has(n));
    if (unknown.length) throw new Error(`route ${JSON.stringify(r.path)} uses undefined ${JSON.stringify(unknown.sort())}`);
  }
  return r;
}

/**
 * Percent-decoded segments, or null for an ambiguous path (never matched).
 * @param {string} path @returns {string[] | null}
 */
export function segmentsOf(path) {
  if (!path.startsWith('/')) return null;
  const raw = path.slice(1).split('/');
  const out = [];
  for (let i = 0; i < raw.length; i += 1) {
    const value = unquoteStrict(raw[i]);
    if (value === null) return null;
    if ((value === '' && i !== raw.length - 1) || value === '.' || value === '..'
        || value.includes('/') || value.includes('\\') || /[\x00-\x1f\x7f]/.test(value)) {
      return null;
    }
    out.push(value);
  }
  return out;
}

/**
 * The first route matching `method` and `path` (a query string is ignored), else null.
 * @param {readonly import('./index.js').RouteSpec[]} routes @param {string} method @param {string} path
 * @returns {import('./index.js').RouteMatch | null}
 */
export function matchRoute(routes, method, path) {
  const segments = segmentsOf(path.split('?', 1)[0]);
  if (segments === null) return null;
  const verb = method.toUpperCase();
  for (const spec of routes) {
    const r = route(spec);
    if (r.method !== '*' && r.method.toUpperCase() !== verb) continue;
    const pattern = r.path.slice(1).split('/');
    if (pattern.length !== segments.length) continue;
    /** @type {Record<string, string>} */
    const params = {};
    let ok = true;
    for (let i = 0; i < pattern.length && ok; i += 1) {
      const m = WHOLE_PARAM.exec(pattern[i]);
      if (m) {
        if (!segments[i]) ok = false;
        else params[m[1]] = segments[i];
      } else if (pattern[i] !== segments[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    const values = { ...params, method: verb };
    const fill = (/** @type {string} */ t) => t.replace(PARAM, (_, name) => values[/** @type {keyof typeof values} */ (name)]);
    return {
      action: r.action,
      resource: { type: r.resource_type, id: fill(r.resource_id) },
      context: Object.fromEntries(Object.entries(r.context).map(([k, v]) => [k, fill(v)])),
      params,
    };
  }
  return null;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Python's `urllib.parse.unquote(text, errors="strict")`: runs of `%XX` decoded as UTF-8
 * (null when they are not UTF-8), a `%` not followed by two hex digits left as it is.
 * @param {string} text @returns {string | null}
 */
function unquoteStrict(text) {
  let failed = false;
  const out = text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return UTF8.decode(Buffer.from(run.replace(/%/g, ''), 'hex'));
    } catch {
      failed = true;
      return '';
    }
  });
  return failed ? null : out;
}
