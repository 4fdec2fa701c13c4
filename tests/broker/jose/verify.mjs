// Verify a broker-issued token with panva/jose against the broker's published JWK Set.
// Usage: node verify.mjs <jwks.json path> <token> <issuer> <audience> <now (epoch s)>
// Prints {"ok": true, "payload": ..., "header": ...} or {"ok": false, "code": ..., "message": ...}.
import { readFileSync } from "node:fs";
import { createLocalJWKSet, jwtVerify } from "jose";

const [jwksPath, token, issuer, audience, now] = process.argv.slice(2);
const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksPath, "utf8")));
try {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer, audience, algorithms: ["ES256"], typ: "at+jwt",
    currentDate: new Date(Number(now) * 1000),
  });
  console.log(JSON.stringify({ ok: true, payload, header: protectedHeader }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code ?? "unknown", message: e.message }));
}
