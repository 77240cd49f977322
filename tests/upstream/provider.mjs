// A real third-party OpenID Provider for Custodia's end-to-end tests: oidc-provider (pinned in
// package.json) with its built-in development login and consent pages, on http loopback.
//
// Started by `custodia_tests::Upstream::start` (tests/src/lib.rs); by hand:
//   PORT=4000 ISSUER=http://127.0.0.1:4000 CLIENTS='[{"client_id":"rp","client_secret":"s",
//     "redirect_uris":["https://client.example/cb"]}]' node provider.mjs
//
// Env:
//   PORT     port to listen on (127.0.0.1 only)
//   ISSUER   the issuer identifier, `http://127.0.0.1:PORT`
//   CLIENTS  a JSON array of oidc-provider client metadata; grant_types, response_types and
//            token_endpoint_auth_method default to authorization_code, code, client_secret_basic
//   EXIT_WITH_STDIN=1  also exit when stdin closes (the harness sets it, so a test process that
//            dies without running its destructors does not leave the provider behind)
//
// Any login name and password are accepted; `sub` is the login name. Claims come from ACCOUNTS.
// Prints `ready <issuer>` once listening; exits on SIGTERM and SIGINT.
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT);
const ISSUER = process.env.ISSUER || `http://${HOST}:${PORT}`;

function fail(message) {
  console.error(`upstream: ${message}`);
  process.exit(2);
}

if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) fail(`PORT must be a port number, got \`${process.env.PORT}\``);

let clients;
try {
  clients = JSON.parse(process.env.CLIENTS || '[]');
} catch (e) {
  fail(`CLIENTS is not JSON: ${e.message}`);
}
if (!Array.isArray(clients)) fail('CLIENTS must be a JSON array of client metadata');
clients = clients.map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));

// The fixed accounts. Logins not listed here get only `name` and `email`.
const ACCOUNTS = {
  'dr-who': {
    name: 'Dr Who',
    email: 'dr.who@clinic.example',
    email_verified: true,
    role: 'clinician',
    practitioner_id: 'P-1001',
  },
  'nurse-joy': {
    role: 'nurse',
    practitioner_id: 'N-2002',
  },
};

function claimsOf(login) {
  return ACCOUNTS[login] ?? { name: login, email: `${login}@upstream.example` };
}

// One RS256 signing key per run (ID tokens are signed with it; the JWKS endpoint publishes it).
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const configuration = {
  clients,
  jwks: { keys: [{ ...rsa, kid: `rsa-${crypto.randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'email', 'clinical'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    clinical: ['role', 'practitioner_id', 'acr_level'],
  },
  // Claims requested by scope also go into the ID token, not only to userinfo.
  conformIdTokenClaims: false,
  features: {
    // The built-in login and consent pages: any login and password are accepted.
    devInteractions: { enabled: true },
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, ...claimsOf(sub) };
      },
    };
  },
  // Fixed lifetimes (seconds), which also keeps oidc-provider from noting each default it uses.
  ttl: {
    Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60,
  },
  // `pkce` keeps its default: optional for confidential clients, S256 accepted.
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (ctx, err) => console.error('upstream: server_error', err));

const server = provider.listen(PORT, HOST, () => {
  console.log(`ready ${ISSUER}`);
});
server.on('error', (e) => fail(`listen on ${HOST}:${PORT}: ${e.message}`));

const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
