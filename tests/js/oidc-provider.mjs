// A real OpenID Connect provider (npm `oidc-provider`) for the browser tests,
// so that Custodian's "sign in with OIDC" can be driven end to end on this
// machine without reaching the internet.
//
//   node tests/js/oidc-provider.mjs --client-id ID --client-secret SECRET \
//     --redirect-uri URL --accounts FILE.json
//
// It listens on a free port of 127.0.0.1 with the plain-http issuer
// http://127.0.0.1:PORT and, once ready, prints exactly one line on stdout:
//   {"issuer":"http://127.0.0.1:PORT"}
// Everything else goes to stderr. It runs until killed, or until its stdin
// closes (so give it a pipe, not /dev/null: a test that dies takes it along).
//
// One static confidential client (client_secret_basic or client_secret_post,
// code flow only, PKCE S256 required, RS256 ID tokens). FILE.json is an array
// of accounts:
//   [{"login": "alice", "password": "pw", "sub": "...", "name": "...",
//     "email": "...", "email_verified": true, "groups": ["custodian-admins"]}]
// The sign-in page (/interaction/UID) is a plain HTML form, no JavaScript;
// it refuses an unknown login or a wrong password. There is no consent page:
// whatever scopes and claims are asked for are granted. Scopes: openid, email
// (email, email_verified), profile (name), groups (groups); these claims are
// put in the ID token as well as in userinfo.

import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints its notices with console.info; stdout is kept for the
// single JSON line.
for (const level of ['log', 'info', 'debug']) {
  console[level] = (...args) => console.error(...args);
}

const { values: args } = parseArgs({
  options: {
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    accounts: { type: 'string' },
  },
  strict: true,
});
for (const name of ['client-id', 'client-secret', 'redirect-uri', 'accounts']) {
  if (!args[name]) {
    console.error(`oidc-provider.mjs: --${name} is required`);
    process.exit(2);
  }
}

const accounts = JSON.parse(readFileSync(args.accounts, 'utf8'));
if (!Array.isArray(accounts)) {
  console.error('oidc-provider.mjs: the accounts file must hold a JSON array');
  process.exit(2);
}
const bySub = new Map(accounts.map((a) => [String(a.sub), a]));

function sameString(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

function checkPassword(login, password) {
  const account = accounts.find((a) => a.login === login);
  if (!account || typeof password !== 'string' || !sameString(account.password, password)) {
    return undefined;
  }
  return account;
}

// Exit when the parent goes away.
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

const { default: Provider } = await import('oidc-provider');

// Until the provider exists (it needs the port for its issuer), refuse.
let handler = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'RS256',
  use: 'sig',
};

const SCOPES = ['openid', 'email', 'profile', 'groups'];

// Grant at once whatever this request asks for, in place of a consent page.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant) {
    grant = new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
  }
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: [args['redirect-uri']],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  jwks: { keys: [signingKey] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  loadExistingGrant,
  async findAccount(ctx, sub) {
    const account = bySub.get(String(sub));
    if (!account) return undefined;
    return {
      accountId: String(account.sub),
      async claims() {
        const claims = { sub: String(account.sub) };
        for (const name of ['name', 'email', 'email_verified', 'groups']) {
          if (account[name] !== undefined) claims[name] = account[name];
        }
        return claims;
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<h1>Sign-in error</h1>
<p>${escape(out.error)}${out.error_description ? `: ${escape(out.error_description)}` : ''}</p>`);
  },
});

provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

function escape(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title></head>
<body><main>
${body}
</main></body>
</html>
`;
}

function loginPage(uid, { login = '', error } = {}) {
  return page('Sign in', `<h1>Sign in</h1>
${error ? `<p role="alert" id="error">${escape(error)}</p>\n` : ''}<form method="post" action="/interaction/${escape(uid)}/login">
<p><label for="login">Login</label>
<input id="login" name="login" type="text" autocomplete="username" required value="${escape(login)}"></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button id="submit" type="submit">Sign in</button></p>
</form>`);
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(html);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

// The interaction pages: plain node handlers in front of the provider.
async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('Sign-in error', `<h1>Sign-in error</h1>
<p>This sign-in has expired or its cookie is missing; start again from the application.</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in error', '<h1>Sign-in error</h1>\n<p>Interaction mismatch.</p>'));
    return;
  }
  const prompt = details.prompt.name;
  if (prompt === 'consent') {
    // Only reached if the automatic grant did not cover the request.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const d = details.prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (prompt !== 'login') {
    send(res, 501, page('Sign-in error', `<h1>Sign-in error</h1>\n<p>Unsupported prompt ${escape(prompt)}.</p>`));
    return;
  }
  if (action === undefined && req.method === 'GET') {
    send(res, 200, loginPage(uid));
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const account = checkPassword(login, form.get('password'));
    if (!account) {
      console.error(`oidc-provider.mjs: refused sign-in for ${JSON.stringify(login)}`);
      send(res, 401, loginPage(uid, { login, error: 'Wrong login or password.' }));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: String(account.sub) },
    }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(405, { allow: action === 'login' ? 'POST' : 'GET' });
  res.end();
}

const providerCallback = provider.callback();
handler = (req, res) => {
  const m = /^\/interaction\/([^/?]+)(?:\/(login))?(?:\?.*)?$/.exec(req.url);
  if (!m) {
    providerCallback(req, res);
    return;
  }
  interaction(req, res, decodeURIComponent(m[1]), m[2]).catch((err) => {
    console.error('oidc-provider.mjs: interaction failed:', err);
    if (!res.headersSent) send(res, 500, page('Sign-in error', '<h1>Sign-in error</h1>'));
    else res.end();
  });
};

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
