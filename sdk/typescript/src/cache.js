// A bounded decision cache that never serves an answer past the PDP's say-so.
//
// The same rules as the Python SDK's DecisionCache:
// - an entry lives for `valid_until - timestamp` (both from the PDP's clock, so the
//   service's clock skew does not matter), measured on this process's monotonic clock
//   from when it was stored, capped by `maxAgeMs` when given;
// - every answer carries the live-context version (`context.version`); once an answer
//   with a new version is seen, every entry of another version is dead (an incident,
//   risk change or revocation happened since);
// - only real decisions are cached, never a deny the SDK made itself;
// - at `maxEntries` the least recently used entry goes.

import { createHash } from 'node:crypto';

export class DecisionCache {
  /**
   * @param {{ maxEntries?: number, maxAgeMs?: number | null, now?: () => number }} [options]
   *   `now`: monotonic milliseconds (tests pass a fake clock).
   */
  constructor({ maxEntries = 10_000, maxAgeMs = null, now = () => performance.now() } = {}) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1');
    this.maxEntries = maxEntries;
    this.maxAgeMs = maxAgeMs;
    this.now = now;
    /** @type {Map<string, { decision: import('./index.js').Decision, expiresAt: number, version: string | null }>} */
    this.entries = new Map();
    /** @type {string | null} */
    this.version = null;
    this.hits = 0;
    this.misses = 0;
  }

  /**
   * A stable key; the credential enters only as its SHA-256.
   * @param {Record<string, string>} subject @param {string} action
   * @param {import('./index.js').Resource} resource @param {Record<string, unknown> | undefined} context
   */
  static key(subject, action, resource, context) {
    const credential = createHash('sha256').update(stableJson(subject)).digest('hex');
    return createHash('sha256')
      .update(stableJson({ subject: credential, action, resource, context: context ?? {} }))
      .digest('hex');
  }

  /** The live context is now at `version`: entries of any other version are stale. @param {string | null} version */
  observeVersion(version) {
    if (version == null || version === this.version) return;
    this.version = version;
    for (const [key, entry] of this.entries) {
      if (entry.version !== null && entry.version !== version) this.entries.delete(key);
    }
  }

  /** @param {string} key @returns {import('./index.js').Decision | null} */
  get(key) {
    const entry = this.entries.get(key);
    if (entry === undefined) { this.misses += 1; return null; }
    const stale = entry.version !== null && this.version !== null && entry.version !== this.version;
    if (this.now() >= entry.expiresAt || stale) {
      this.entries.delete(key);
      this.misses += 1;
      return null;
    }
    this.entries.delete(key); // most recently used goes last
    this.entries.set(key, entry);
    this.hits += 1;
    return { ...entry.decision, cached: true };
  }

  /** Keep `decision` until its valid_until (nothing without one). @param {string} key @param {import('./index.js').Decision} decision */
  put(key, decision) {
    this.observeVersion(decision.contextVersion);
    if (decision.madeBySdk || !decision.validUntil || !decision.timestamp) return;
    let ttl = decision.validUntil.getTime() - decision.timestamp.getTime();
    if (this.maxAgeMs != null) ttl = Math.min(ttl, this.maxAgeMs);
    if (!(ttl > 0)) return;
    this.entries.delete(key);
    this.entries.set(key, { decision, expiresAt: this.now() + ttl, version: decision.contextVersion });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size() { return this.entries.size; }
}

/** JSON with object keys sorted, so equal questions give equal keys. @param {unknown} value @returns {string} */
function stableJson(value) {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
