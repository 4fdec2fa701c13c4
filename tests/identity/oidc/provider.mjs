// A real OpenID provider (panva/node-oidc-provider) for the PDP's issuer tests.
//
//   node provider.mjs [AUDIENCE]
//
// Listens on a free loopback port and prints `ready <issuer>` once serving.
// One confidential client, `reporter-agent` / `agent-secret`, may use the
// client_credentials grant; with resource indicators it gets an RFC 9068 JWT
// access token (typ at+jwt, ES256) whose aud is AUDIENCE (default `pdp`),
// with scope `reports:read` and a `groups` claim.
// `POST /__rotate` rotates the signing key: a new key signs from then on and
// the previous ones stay published in jwks_uri, as a provider does mid-rotation.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const AUDIENCE = process.argv[2] || 'pdp';
const RESOURCE = 'https://pdp.test/';
const keys = [];

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `es256-${keys.length + 1}-${crypto.randomUUID().slice(0, 8)}`, alg: 'ES256', use: 'sig' };
}

function buildProvider(issuer) {
  return new Provider(issuer, {
    clients: [{
      client_id: 'reporter-agent',
      client_secret: 'agent-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [...keys] },
    scopes: ['reports:read'],
    ttl: { ClientCredentials: 300 },
    // A groups claim, for the PDP's claim -> groups mapping.
    extraTokenClaims: async () => ({ groups: ['reporting'] }),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'reports:read',
            audience: AUDIENCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
  });
}

let provider;
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/__rotate') {
    keys.unshift(newSigningKey());
    provider = buildProvider(provider.issuer);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kid: keys[0].kid, published: keys.map((k) => k.kid) }));
    return;
  }
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  keys.unshift(newSigningKey());
  provider = buildProvider(issuer);
  process.stdout.write(`ready ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
