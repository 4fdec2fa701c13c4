// An Express service protected by the PDP, with no secret in its code or environment.
//
// Its own identity (the PDP checks it against `pep_allowlist`) is the JWT-SVID that
// SPIRE's spiffe-helper keeps in a file, fetched from the local SPIFFE Workload API and
// rewritten before it expires; the SDK re-reads the file when it changes. Callers present
// their own JWT-SVID as `Authorization: Bearer`.
//
//   PDP_URL=http://127.0.0.1:8181 PDP_TOKEN_FILE=/run/svid/pdp.jwt PORT=8000 \
//     node sdk/typescript/examples/express-service.js
//
// Prints `listening <port>` once it accepts connections (PORT=0 picks a free port).

import express from 'express';

import { Guard, PDPClient, DecisionCache, expressRequire, fileToken } from '../src/index.js';

const pdp = new PDPClient(process.env.PDP_URL ?? 'http://127.0.0.1:8181', {
  cache: new DecisionCache(),
  timeoutMs: Number(process.env.PDP_TIMEOUT_MS ?? 2000),
  pepToken: process.env.PDP_TOKEN_FILE ? fileToken(process.env.PDP_TOKEN_FILE) : null,
});
const guard = new Guard(pdp, { namespace: 'App' });

/** @type {Record<string, unknown[]>} */
const DATASETS = { 'sales-daily': [{ day: '2026-01-05', total: 1200 }], ledger: [{ account: '4000', balance: 10 }] };

const app = express();
app.use(express.json());
app.get('/datasets/:name', expressRequire(guard, 'read', { resource: (req) => ['Dataset', req.params.name] }),
  (req, res) => { res.json({ dataset: req.params.name, rows: DATASETS[req.params.name] ?? [] }); });
app.put('/datasets/:name', expressRequire(guard, 'write', { resource: (req) => ['Dataset', req.params.name] }),
  (req, res) => { DATASETS[req.params.name] = req.body?.rows ?? []; res.json({ dataset: req.params.name }); });

const server = app.listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : address}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
