// An OpenID provider for tests/e2e/test_oidc.py: node-oidc-provider (OpenID Certified), one client, a few people.
//
//   node oidc_provider.mjs PORT REDIRECT_URI CLIENT_ID CLIENT_SECRET
//
// Its development login form takes any password; the login names one of ACCOUNTS (anyone else has
// no groups). The client is confidential (client_secret_basic), must send PKCE (S256), and is
// first-party: nobody is asked to consent. The ID token carries the profile, email and groups claims
// itself (conformIdTokenClaims off), as Keycloak's does. Every code brings a refresh token, as
// Keycloak's does, rotated at each use; the refresh_token grant answers with a new ID token whose
// claims are the account's as they are then.
//
// A test changes an account as an administrator of the provider would:
//   PUT /test/accounts/<login>  {"groups": [...]}  puts them in these groups (and enables them)
//   PUT /test/accounts/<login>  {"disabled": true}  disables them: the provider knows them no more
//   PUT /test/accounts/<login>  {"name": "..."}  names them so (preferred_username, name), groups kept
import Provider from "oidc-provider";

const [port, redirectUri, clientId, clientSecret] = process.argv.slice(2);
const issuer = `http://localhost:${port}`;

// Who may sign in, and the groups each one is in (the proxy's settings map them to roles).
const ACCOUNTS = {
  ada: ["proxy-admins"],
  vic: ["proxy-viewers"],
  tom: ["team_admin:research"],
  mia: ["team:research"],
  nat: ["staff"],
};
const DISABLED = new Set();
const NAMES = {}; // a name other than the login, as the provider's administrator typed it

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "email", "groups"],
  claims: { openid: ["sub"], profile: ["preferred_username", "name"], email: ["email"], groups: ["groups"] },
  conformIdTokenClaims: false,
  // offline_access is kept only with prompt=consent here (OpenID Connect Core 11); Keycloak, like this,
  // gives a first-party client a refresh token with every code, bound to the sign-in's session.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  rotateRefreshToken: true,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["test-cookie-key-not-a-secret"] },
  async findAccount(ctx, sub) {
    if (DISABLED.has(sub)) {
      return undefined; // a disabled account: its refresh tokens are refused (invalid_grant)
    }
    return {
      accountId: sub,
      async claims() {
        const name = NAMES[sub] ?? sub;
        return { sub, preferred_username: name, name, email: `${sub}@example.com`, groups: ACCOUNTS[sub] ?? [] };
      },
    };
  },
  // A first-party client: the grant is made at once, with every scope it asks for, and no consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);

provider.use(async (ctx, next) => {
  const account = ctx.path.match(/^\/test\/accounts\/([\w.-]+)$/);
  if (!account || ctx.method !== "PUT") {
    return next();
  }
  const chunks = [];
  for await (const chunk of ctx.req) {
    chunks.push(chunk);
  }
  const change = JSON.parse(Buffer.concat(chunks).toString() || "{}");
  if (change.disabled) {
    DISABLED.add(account[1]);
  } else if ("name" in change) {
    NAMES[account[1]] = change.name;
  } else {
    DISABLED.delete(account[1]);
    ACCOUNTS[account[1]] = change.groups ?? [];
  }
  ctx.status = 204;
});
provider.listen(Number(port), "127.0.0.1", () => console.log(`listening ${issuer}`));
