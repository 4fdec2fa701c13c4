// A real OpenID provider (panva/node-oidc-provider) for the console's sign-in tests.
//
//   node console_provider.mjs
//
// Listens on a free loopback port and prints `ready <issuer>` once serving. One public
// client, `pdp-console` (no secret, authorization code + PKCE S256, application_type
// native so any loopback port may receive the redirect, RFC 8252 §7.3), redirecting to
// http://127.0.0.1/console/oidc/callback. The provider's own development login and consent
// pages (login, then consent: "Continue") sign anyone in with any password: the login is
// the subject, and `alice` is in group auditors, `sam` in sre (the ID token's `groups`).
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'console-es256', alg: 'ES256', use: 'sig' };
}

// The people of this test organization and their groups; anyone else signs in with none.
const GROUPS = { alice: ['auditors'], sam: ['sre'] };

function account(login) {
  return { accountId: login, claims: async () => ({ sub: login, groups: GROUPS[login] || [] }) };
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'pdp-console',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/console/oidc/callback'],
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [signingKey()] },
    scopes: ['openid', 'groups'],
    claims: { openid: ['sub'], groups: ['groups'] },
    conformIdTokenClaims: false, // the scope's claims go into the ID token itself
    findAccount: async (_ctx, id) => account(id),
    ttl: { IdToken: 600, AuthorizationCode: 60, Session: 3600, Interaction: 600, Grant: 3600 },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  server.on('request', provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
