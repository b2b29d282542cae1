/**
 * OIDC web login (openid-client): authorization code flow with PKCE, state and nonce,
 * discovery from the issuer. The flow's secrets travel in a short-lived HMAC-signed,
 * HttpOnly cookie, so no server-side state is kept between the two legs. The verified
 * identity is mapped to a Lattice user ({@link UserService.loginOidc}); the caller then
 * opens the same web session a local login gets.
 */
import * as client from "openid-client";
import type { Selectable } from "kysely";
import type { Control } from "../app.js";
import type { OidcConfig } from "../config.js";
import type { UsersTable } from "../db/schema.js";
import { ControlError } from "../errors.js";

/** Cookie carrying the flow's state, nonce and PKCE verifier between the two legs. */
export const OIDC_FLOW_COOKIE = "lattice_oidc";
/** How long a started sign-in may take. */
export const OIDC_FLOW_MS = 10 * 60_000;

/** A sign-in failure shown to the person (status: 400 bad/expired flow, 403 not allowed, 502 provider trouble). */
export class OidcLoginError extends ControlError {
  constructor(code: string, message: string, status: number) {
    super(code, message, status);
    this.name = "OidcLoginError";
  }
}

interface FlowState {
  /** state */
  s: string;
  /** nonce */
  n: string;
  /** PKCE code verifier */
  v: string;
  /** where to go after login */
  next: string;
  /** expiry, ms since epoch */
  exp: number;
}

function isLoopback(u: URL): boolean {
  return ["127.0.0.1", "[::1]", "localhost"].includes(u.hostname);
}

/** The OIDC login of one server: builds authorization redirects and completes callbacks. */
export class OidcLogin {
  /** Redirect URI registered with the provider: `<server-url>/oidc/callback`. */
  readonly redirectUri: string;
  private discovered: Promise<client.Configuration> | null = null;

  constructor(
    private readonly c: Control,
    readonly config: OidcConfig,
    serverUrl: string,
  ) {
    this.redirectUri = `${serverUrl.replace(/\/+$/, "")}/oidc/callback`;
  }

  /** What the login button says: the issuer's host. */
  get label(): string {
    return `Sign in with ${new URL(this.config.issuer).host}`;
  }

  /**
   * Runs discovery now (at startup: a server configured for OIDC that cannot reach its
   * issuer refuses to start, as headscale does). Throws the discovery error itself.
   */
  async ready(): Promise<void> {
    const started = this.provider();
    started.catch(() => {});
    await this.discovered;
  }

  /** Discovery, done once on first use (and retried after a failure). */
  private provider(): Promise<client.Configuration> {
    if (!this.discovered) {
      const issuer = new URL(this.config.issuer);
      const insecure = issuer.protocol === "http:" && isLoopback(issuer);
      const opts = insecure ? { execute: [client.allowInsecureRequests] } : undefined;
      this.discovered = client.discovery(issuer, this.config.clientId, this.config.clientSecret, undefined, opts).then((found) => {
        // Prefer client_secret_basic (the OIDC default) unless the provider lists only post.
        const methods = found.serverMetadata().token_endpoint_auth_methods_supported;
        if (methods && !methods.includes("client_secret_basic") && methods.includes("client_secret_post")) return found;
        const cfg = new client.Configuration(found.serverMetadata(), this.config.clientId, this.config.clientSecret, client.ClientSecretBasic(this.config.clientSecret));
        if (insecure) client.allowInsecureRequests(cfg);
        return cfg;
      });
      this.discovered.catch(() => (this.discovered = null));
    }
    return this.discovered.catch((e: unknown) => {
      throw new OidcLoginError("oidc_unavailable", `the identity provider ${this.config.issuer} is not reachable: ${(e as Error).message}`, 502);
    });
  }

  private sealFlow(f: FlowState): string {
    const payload = Buffer.from(JSON.stringify(f)).toString("base64url");
    return `${payload}.${this.c.sessions.sign(`oidc-flow:${payload}`)}`;
  }

  private openFlow(cookie: string | undefined): FlowState | null {
    if (!cookie) return null;
    const [payload, sig] = cookie.split(".");
    if (!payload || !sig || !this.c.sessions.verify(`oidc-flow:${payload}`, sig)) return null;
    try {
      const f = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as FlowState;
      return typeof f.exp === "number" && f.exp > this.c.ctx.now() ? f : null;
    } catch {
      return null;
    }
  }

  /** Starts a sign-in: the provider URL to redirect to and the flow cookie's value. */
  async start(next: string): Promise<{ location: string; cookie: string }> {
    const cfg = await this.provider();
    const rnd = (n: number) => this.c.ctx.random(n).toString("base64url");
    const flow: FlowState = { s: rnd(16), n: rnd(16), v: rnd(32), next, exp: this.c.ctx.now() + OIDC_FLOW_MS };
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: this.redirectUri,
      scope: "openid email profile",
      response_type: "code",
      state: flow.s,
      nonce: flow.n,
      code_challenge: await client.calculatePKCECodeChallenge(flow.v),
      code_challenge_method: "S256",
    });
    return { location: url.href, cookie: this.sealFlow(flow) };
  }

  /**
   * Completes a sign-in from the callback's query: checks the flow cookie and state,
   * exchanges the code (PKCE, nonce and ID token verified by openid-client), reads the
   * e-mail (ID token, else userinfo), enforces the allow-lists and maps the user.
   */
  async finish(query: URLSearchParams, cookie: string | undefined): Promise<{ user: Selectable<UsersTable>; next: string }> {
    const error = query.get("error");
    if (error) {
      const desc = query.get("error_description");
      throw new OidcLoginError("oidc_denied", `the identity provider refused the sign-in: ${error}${desc ? ` (${desc})` : ""}`, 401);
    }
    const flow = this.openFlow(cookie);
    if (!flow) throw new OidcLoginError("oidc_flow_expired", "this sign-in expired or was started in another browser; please start again", 400);
    if (query.get("state") !== flow.s) throw new OidcLoginError("oidc_bad_state", "the sign-in response does not match this browser's request (state mismatch); please start again", 400);
    const cfg = await this.provider();
    const current = new URL(this.redirectUri);
    current.search = query.toString();
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(cfg, current, { pkceCodeVerifier: flow.v, expectedState: flow.s, expectedNonce: flow.n, idTokenExpected: true });
    } catch (e) {
      const status = e instanceof client.ResponseBodyError || e instanceof client.AuthorizationResponseError || e instanceof client.ClientError ? 400 : 502;
      throw new OidcLoginError("oidc_exchange_failed", `the sign-in could not be verified: ${(e as Error).message}`, status);
    }
    const claims = tokens.claims()!;
    let info: Record<string, unknown> = claims;
    if (typeof claims.email !== "string" && cfg.serverMetadata().userinfo_endpoint) {
      try {
        info = { ...(await client.fetchUserInfo(cfg, tokens.access_token, claims.sub)), ...claims };
      } catch (e) {
        throw new OidcLoginError("oidc_userinfo_failed", `could not read the account's details from the identity provider: ${(e as Error).message}`, 502);
      }
    }
    const email = typeof info.email === "string" && info.email !== "" ? info.email.toLowerCase() : null;
    if (email && (info.email_verified === false || info.email_verified === "false")) {
      throw new OidcLoginError("oidc_email_unverified", `the e-mail address ${email} is not verified at the identity provider`, 403);
    }
    const { allowedDomains, allowedUsers } = this.config;
    if (allowedDomains.length || allowedUsers.length) {
      if (!email) throw new OidcLoginError("oidc_not_allowed", "this server only admits listed e-mail addresses or domains, and the identity provider gave no e-mail", 403);
      const domain = email.slice(email.lastIndexOf("@") + 1);
      if (!allowedUsers.includes(email) && !allowedDomains.includes(domain)) {
        throw new OidcLoginError("oidc_not_allowed", `${email} is not allowed to sign in to this server`, 403);
      }
    }
    const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : null);
    const user = await this.c.users.loginOidc({
      issuer: this.config.issuer,
      subject: claims.sub,
      email,
      username: str(info.preferred_username),
      displayName: str(info.name),
    });
    return { user, next: flow.next };
  }
}
