// Credentials: this service's own (token sources for `pepToken`), and the caller's
// (taken from an incoming request's headers).
//
// Token sources are functions returning the current token; the client calls one per
// request. `staticToken` for a fixed token; `fileToken` for a file another process keeps
// current — SPIRE's spiffe-helper writing the JWT-SVID it fetches from the Workload API
// (the Node SDK has no runtime dependency, so it does not speak the Workload API's gRPC
// itself) or a Kubernetes projected token. The file is re-read whenever its size,
// modification time or inode changes.
//
// The caller's credential, the same rules as the Python SDK (pdp_client/credentials.py,
// checked against each other on sdk/fixtures/forwarded-certs.json): `Authorization: Bearer <JWT>`, else —
// only when the TCP peer is one of `trustedProxies` — the client certificate a proxy
// forwards (Envoy's `x-forwarded-client-cert`, nginx's `ssl-client-escaped-cert` or
// `ssl-client-cert`).

import { readFile, stat } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';

/** @param {string} token @returns {() => string} */
export function staticToken(token) {
  if (typeof token !== 'string' || !token.trim()) throw new TypeError('staticToken needs a non-empty token');
  const value = token.trim();
  return () => value;
}

/**
 * A token kept in a file, re-read when the file changes (size, mtime or inode).
 * The returned function rejects when the file is missing or empty.
 * @param {string} path
 * @returns {() => Promise<string>}
 */
export function fileToken(path) {
  /** @type {{ stamp: string, token: string } | null} */
  let last = null;
  return async () => {
    const info = await stat(path);
    const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
    if (last === null || last.stamp !== stamp) {
      const token = (await readFile(path, 'utf8')).trim();
      if (!token) throw new Error(`the token file ${path} is empty`);
      last = { stamp, token };
    }
    return last.token;
  };
}

/** `Bearer abc` -> `abc` (case-insensitive scheme); anything else -> null. @param {string | undefined} value */
export function bearerToken(value) {
  const text = value ?? '';
  const space = text.indexOf(' ');
  if (space < 0) return null;
  const token = text.slice(space + 1).trim();
  return text.slice(0, space).toLowerCase() === 'bearer' && token ? token : null;
}

/**
 * `peer` (an IP address) is in one of `trustedProxies` (addresses or CIDRs).
 * @param {string | null | undefined} peer @param {readonly string[]} trustedProxies
 */
export function isTrusted(peer, trustedProxies) {
  if (!peer || !trustedProxies.length) return false;
  const address = peer.startsWith('::ffff:') && isIP(peer.slice(7)) === 4 ? peer.slice(7) : peer;
  const family = isIP(address);
  if (!family) return false;
  const list = new BlockList();
  for (const entry of trustedProxies) {
    const [net, bits] = entry.split('/');
    const netFamily = isIP(net);
    if (!netFamily) continue;
    const type = netFamily === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(net, type);
    else list.addSubnet(net, Number(bits), type);
  }
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The PEM of the nearest (last) XFCC element's `Chain` or `Cert`, URL-decoded.
 * @param {string} header @returns {string | null}
 */
export function xfccPem(header) {
  const elements = split(header, ',');
  if (!elements.length) return null;
  /** @type {Record<string, string>} */
  const fields = {};
  for (const pair of split(elements[elements.length - 1], ';')) {
    const trimmed = pair.trim();
    const eq = trimmed.indexOf('=');
    if (eq < 0) continue;
    let value = trimmed.slice(eq + 1);
    if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') {
      value = value.slice(1, -1).replaceAll('\\"', '"');
    }
    fields[trimmed.slice(0, eq).toLowerCase()] = value;
  }
  const raw = fields.chain || fields.cert;
  return raw ? unquote(raw) : null;
}

/**
 * PEM whose line breaks a header turned into spaces (nginx `$ssl_client_cert`), re-wrapped.
 * @param {string} value
 */
export function unfoldPem(value) {
  const out = [];
  for (const m of value.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g)) {
    const b64 = m[1].replace(/\s+/g, '');
    const lines = b64.match(/.{1,64}/g) ?? [];
    out.push(`-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`);
  }
  return out.join('') || value;
}

/**
 * `{token}`, `{x509}` or null. Header names must be lowercase (Node's are).
 * @param {Record<string, string | string[] | undefined>} headers
 * @param {string | null | undefined} peer @param {readonly string[]} trustedProxies
 * @returns {{ token: string } | { x509: string } | null}
 */
export function credentialFromHeaders(headers, peer, trustedProxies) {
  const get = (/** @type {string} */ name) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const token = bearerToken(get('authorization'));
  if (token) return { token };
  if (!isTrusted(peer, trustedProxies)) return null;
  const xfcc = get('x-forwarded-client-cert');
  if (xfcc) {
    const pem = xfccPem(xfcc);
    return pem ? { x509: pem } : null;
  }
  const escaped = get('ssl-client-escaped-cert');
  if (escaped) return { x509: unquote(escaped) };
  const folded = get('ssl-client-cert');
  if (folded) return { x509: unfoldPem(folded) };
  return null;
}

/** Python's urllib.parse.unquote: %XX sequences as UTF-8, invalid ones left as they are. @param {string} text */
function unquote(text) {
  return text.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8');
    }
  });
}

/** Split on `separator` outside double quotes (a backslash escapes inside them). @param {string} text @param {string} separator */
function split(text, separator) {
  const parts = [];
  let current = '';
  let quoted = false;
  let escaped = false;
  for (const char of text) {
    if (escaped) escaped = false;
    else if (char === '\\' && quoted) escaped = true;
    else if (char === '"') quoted = !quoted;
    else if (char === separator && !quoted) { parts.push(current); current = ''; continue; }
    current += char;
  }
  parts.push(current);
  return parts.filter((p) => p.trim());
}
