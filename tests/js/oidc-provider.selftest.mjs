// Checks tests/js/oidc-provider.mjs end to end without a browser: starts it,
// reads discovery, runs an authorization-code + PKCE flow through its sign-in
// form (a wrong password first, which must be refused), redeems the code with
// client_secret_basic and checks the ID token and userinfo. Prints
// "N passed, N failed" and exits non-zero on a failure.
//
//   node tests/js/oidc-provider.selftest.mjs
//
// Needs `npm ci --prefix tests/js` first. Talks to 127.0.0.1 only.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT_ID = 'custodian-test';
const CLIENT_SECRET = 'test-secret-' + randomBytes(8).toString('hex');
const REDIRECT_URI = 'http://127.0.0.1:9/login/oidc/callback';
const ALICE = {
  login: 'alice',
  password: 'pw',
  sub: 'alice-sub-0001',
  name: 'Alice Example',
  email: 'alice@example.test',
  email_verified: true,
  groups: ['custodian-admins'],
};

let passed = 0;
let failed = 0;
function check(what, ok, detail) {
  if (ok) {
    passed += 1;
    console.log(`ok - ${what}`);
  } else {
    failed += 1;
    console.log(`not ok - ${what}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
  return ok;
}

const dir = mkdtempSync(join(tmpdir(), 'oidc-selftest-'));
const accountsFile = join(dir, 'accounts.json');
writeFileSync(accountsFile, JSON.stringify([ALICE, { ...ALICE, login: 'bob', password: 'other', sub: 'bob-sub' }]));

const child = spawn(process.execPath, [join(here, 'oidc-provider.mjs'),
  '--client-id', CLIENT_ID, '--client-secret', CLIENT_SECRET,
  '--redirect-uri', REDIRECT_URI, '--accounts', accountsFile], { stdio: ['pipe', 'pipe', 'pipe'] });
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });

const lines = createInterface({ input: child.stdout });
const stdoutLines = [];
const firstLine = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no issuer line in 20 s; stderr:\n${stderr}`)), 20000);
  lines.on('line', (line) => {
    stdoutLines.push(line);
    if (stdoutLines.length === 1) { clearTimeout(timer); resolve(line); }
  });
  child.on('exit', (code) => reject(new Error(`provider exited with ${code}; stderr:\n${stderr}`)));
});

// A tiny cookie jar: name -> value, for 127.0.0.1 only.
const jar = new Map();
function storeCookies(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    if (attrs.some((a) => /^\s*secure\s*$/i.test(a))) throw new Error(`cookie ${name} is Secure over http`);
    if (attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === '') jar.delete(name);
    else jar.set(name, value);
  }
}
// Path attributes are ignored here on purpose: all cookies are sent (fine for a test).
async function request(url, init = {}) {
  const headers = new Headers(init.headers);
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  storeCookies(res);
  return res;
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

try {
  const { issuer } = JSON.parse(firstLine);
  check('stdout line is {"issuer":"http://127.0.0.1:PORT"}',
    /^\{"issuer":"http:\/\/127\.0\.0\.1:\d+"\}$/.test(firstLine), firstLine);

  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  check('discovery issuer equals printed issuer', disc.issuer === issuer, disc.issuer);
  check('discovery id_token_signing_alg_values_supported is [RS256]',
    JSON.stringify(disc.id_token_signing_alg_values_supported) === '["RS256"]', disc.id_token_signing_alg_values_supported);
  check('discovery scopes', ['openid', 'email', 'profile', 'groups'].every((s) => disc.scopes_supported.includes(s)), disc.scopes_supported);
  check('discovery code_challenge_methods_supported S256', disc.code_challenge_methods_supported?.includes('S256'), disc.code_challenge_methods_supported);
  check('discovery token auth methods', ['client_secret_basic', 'client_secret_post'].every((m) => disc.token_endpoint_auth_methods_supported.includes(m)), disc.token_endpoint_auth_methods_supported);
  const jwks = await (await fetch(disc.jwks_uri)).json();
  check('JWKS has one RSA RS256 public key', jwks.keys.length === 1 && jwks.keys[0].kty === 'RSA' && jwks.keys[0].alg === 'RS256' && !('d' in jwks.keys[0]), jwks);

  // Without PKCE the authorization request is refused.
  const noPkce = new URL(disc.authorization_endpoint);
  noPkce.search = new URLSearchParams({ client_id: CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT_URI, state: 's' });
  const noPkceRes = await fetch(noPkce, { redirect: 'manual' });
  const noPkceLoc = new URL(noPkceRes.headers.get('location') ?? 'http://x/');
  check('authorization without code_challenge is refused (error=invalid_request to redirect_uri)',
    noPkceLoc.searchParams.get('error') === 'invalid_request', `${noPkceRes.status} ${noPkceRes.headers.get('location')}`);

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  const nonce = randomBytes(16).toString('base64url');
  const auth = new URL(disc.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID, response_type: 'code', scope: 'openid email profile groups',
    redirect_uri: REDIRECT_URI, state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  });

  let res = await request(auth);
  const toLogin = res.headers.get('location');
  check('authorization endpoint redirects (303) to /interaction/UID', res.status === 303 && /^\/interaction\/[^/]+$/.test(toLogin), `${res.status} ${toLogin}`);
  res = await request(new URL(toLogin, issuer));
  const html = await res.text();
  check('login page is 200 HTML with login/password inputs and submit button, no script',
    res.status === 200 && html.includes('id="login" name="login"') && html.includes('id="password" name="password"')
      && html.includes('id="submit"') && !/<script/i.test(html), `${res.status}`);
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  check('form posts to /interaction/UID/login', action === `${toLogin}/login`, action);

  const post = (login, password) => request(new URL(action, issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ login, password }),
  });
  res = await post('alice', 'wrong');
  let body = await res.text();
  check('wrong password refused (401, form again with error)', res.status === 401 && body.includes('Wrong login or password') && body.includes('value="alice"'), res.status);
  res = await post('mallory', 'pw');
  body = await res.text();
  check('unknown login refused', res.status === 401 && body.includes('Wrong login or password'), res.status);
  res = await post('alice', 'other');
  await res.text();
  check("another account's password refused", res.status === 401, res.status);

  res = await post('alice', 'pw');
  const resume = res.headers.get('location');
  check('right password: 303 to the resume URL /auth/UID', res.status === 303 && /^http:\/\/127\.0\.0\.1:\d+\/auth\/[^/]+$/.test(resume), `${res.status} ${resume}`);
  res = await request(resume);
  const cb = new URL(res.headers.get('location') ?? 'http://x/');
  check('resume: 303 to the redirect URI with code, state, iss',
    res.status === 303 && `${cb.origin}${cb.pathname}` === REDIRECT_URI && cb.searchParams.get('code')
      && cb.searchParams.get('state') === state && cb.searchParams.get('iss') === issuer, `${res.status} ${cb}`);
  const code = cb.searchParams.get('code');

  const tokenAt = (params, auth = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`) => fetch(disc.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(auth ? { authorization: auth } : {}) },
    body: new URLSearchParams(params),
  });
  res = await tokenAt({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: randomBytes(32).toString('base64url') });
  body = await res.json();
  check('wrong code_verifier refused', res.status === 400 && body.error === 'invalid_grant', body);

  res = await tokenAt({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
  const tokens = await res.json();
  check('token endpoint with client_secret_basic: 200', res.status === 200 && tokens.id_token && tokens.access_token, tokens);
  const [h, p] = tokens.id_token.split('.');
  const header = b64urlJson(h);
  const claims = b64urlJson(p);
  console.log('ID token header', JSON.stringify(header));
  console.log('ID token payload', JSON.stringify(claims));
  check('ID token alg RS256 with the JWKS kid', header.alg === 'RS256' && header.kid === jwks.keys[0].kid, header);
  check('ID token iss', claims.iss === issuer, claims.iss);
  check('ID token aud', claims.aud === CLIENT_ID, claims.aud);
  check('ID token sub', claims.sub === ALICE.sub, claims.sub);
  check('ID token nonce', claims.nonce === nonce, claims.nonce);
  check('ID token email', claims.email === ALICE.email, claims.email);
  check('ID token email_verified', claims.email_verified === true, claims.email_verified);
  check('ID token name', claims.name === ALICE.name, claims.name);
  check('ID token groups', JSON.stringify(claims.groups) === JSON.stringify(ALICE.groups), claims.groups);

  res = await fetch(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  const ui = await res.json();
  console.log('userinfo', JSON.stringify(ui));
  check('userinfo', res.status === 200 && ui.sub === ALICE.sub && ui.email === ALICE.email && ui.email_verified === true
    && ui.name === ALICE.name && JSON.stringify(ui.groups) === JSON.stringify(ALICE.groups), ui);

  res = await tokenAt({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
  body = await res.json();
  check('the code cannot be redeemed twice', res.status === 400 && body.error === 'invalid_grant', body);
  res = await fetch(disc.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  check('redeeming a code twice revokes the access token issued for it', res.status === 401, res.status);

  // With the session cookie, a new authorization goes straight back to the client.
  res = await request(auth);
  let loc = new URL(res.headers.get('location') ?? 'http://x/', issuer);
  check('second authorization with the session cookie: one 303 straight to the redirect URI with a code',
    res.status === 303 && `${loc.origin}${loc.pathname}` === REDIRECT_URI && loc.searchParams.get('code'), `${res.status} ${loc}`);
  // prompt=login asks again.
  const again = new URL(auth);
  again.searchParams.set('prompt', 'login');
  res = await request(again);
  check('prompt=login shows the sign-in page again', res.status === 303 && /^\/interaction\//.test(res.headers.get('location')), res.headers.get('location'));

  // client_secret_post too, and a wrong secret refused.
  res = await request(auth);
  loc = new URL(res.headers.get('location'), issuer);
  res = await tokenAt({ grant_type: 'authorization_code', code: loc.searchParams.get('code'), redirect_uri: REDIRECT_URI, code_verifier: verifier, client_id: CLIENT_ID, client_secret: 'nope' }, null);
  body = await res.json();
  check('client_secret_post with a wrong secret refused', res.status === 401 && body.error === 'invalid_client', body);
  res = await request(auth);
  loc = new URL(res.headers.get('location'), issuer);
  res = await tokenAt({ grant_type: 'authorization_code', code: loc.searchParams.get('code'), redirect_uri: REDIRECT_URI, code_verifier: verifier, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, null);
  body = await res.json();
  check('client_secret_post accepted', res.status === 200 && body.id_token, body);

  check('stdout had exactly one line', stdoutLines.length === 1, stdoutLines);

  // Closing stdin ends the provider.
  const exited = new Promise((resolve) => child.once('exit', (c, s) => resolve({ c, s })));
  child.stdin.end();
  const result = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
  check('provider exits when its stdin closes', result !== 'timeout', result);
} catch (err) {
  check('no exception', false, err.stack);
} finally {
  if (child.exitCode === null) child.kill();
  rmSync(dir, { recursive: true, force: true });
  if (failed) console.log(`provider stderr:\n${stderr}`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
