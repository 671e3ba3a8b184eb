// A real OpenID provider (panva/oidc-provider, pinned in package-lock.json) on
// loopback, for the console's sign-in test: its own login and consent pages
// (devInteractions), one confidential client, PKCE required, and the CareLedger
// claims (role, org, patient) in the ID token for the `careledger` scope.
// Usage: OIDC_PORT=... OIDC_REDIRECT_URI=... OIDC_CLIENT_SECRET=... \
//        OIDC_ACCOUNTS='{"login": {"role": "auditor", "org": "org-main"}}' node provider.mjs
import Provider from "oidc-provider";

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || "{}");

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "careledger-console",
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: [process.env.OIDC_REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true },
  claims: { openid: ["sub"], careledger: ["role", "org", "patient"] },
  conformIdTokenClaims: false,
  cookies: { keys: ["careledger-test-provider-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...(accounts[id] || {}) };
      },
    };
  },
});

provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
