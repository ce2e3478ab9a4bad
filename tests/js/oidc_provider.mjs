// An OpenID provider for tests/e2e/test_oidc.py: node-oidc-provider (OpenID Certified), one client, a few people.
//
//   node oidc_provider.mjs PORT REDIRECT_URI CLIENT_ID CLIENT_SECRET
//
// Its development login form takes any password; the login names one of ACCOUNTS (anyone else has
// no groups). The client is confidential (client_secret_basic), must send PKCE (S256), and is
// first-party: nobody is asked to consent. The ID token carries the profile, email and groups claims
// itself (conformIdTokenClaims off), as Keycloak's does.
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

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "email", "groups"],
  claims: { openid: ["sub"], profile: ["preferred_username", "name"], email: ["email"], groups: ["groups"] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["test-cookie-key-not-a-secret"] },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: sub, name: sub, email: `${sub}@example.com`, groups: ACCOUNTS[sub] ?? [] };
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
provider.listen(Number(port), "127.0.0.1", () => console.log(`listening ${issuer}`));
