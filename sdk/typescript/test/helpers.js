// What the tests share: the PDP the pytest wrapper started (PDP_URL), the JWT-SVIDs it
// minted from that server's development issuer (PDP_TEST_TOKENS: SPIFFE ID -> token), and
// small local HTTP servers that misbehave on purpose.

import { createServer } from 'node:http';

export const PDP_URL = process.env.PDP_URL ?? '';
/** @type {Record<string, string>} */
export const TOKENS = JSON.parse(process.env.PDP_TEST_TOKENS ?? '{}');
export const ETL = 'spiffe://example.org/services/etl';

/** Skip a test that needs the real PDP when run without the pytest wrapper. */
export const needsPdp = PDP_URL ? {} : { skip: 'PDP_URL is not set: run through tests/sdk/test_typescript_sdk.py' };

/**
 * A local HTTP server answering with `handler`; closed by the returned function.
 * @param {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void} handler
 */
export async function localServer(handler) {
  const server = createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve(undefined)); }),
  };
}

/** A port nothing listens on (bound, then closed). */
export async function deadUrl() {
  const s = await localServer(() => {});
  await s.close();
  return s.url;
}

/** fetch that counts the requests it makes. */
export function countingFetch() {
  const calls = { count: 0 };
  /** @type {typeof fetch} */
  const f = (input, init) => { calls.count += 1; return fetch(input, init); };
  return { fetch: f, calls };
}
