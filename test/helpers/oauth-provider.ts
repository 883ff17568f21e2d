import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js'
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js'

const REDIRECT_URL = 'http://127.0.0.1:1/callback'

/**
 * An interactive (authorization code + PKCE) client, as an agent with a user
 * behind it is: "redirecting" the user means following the authorization URL
 * at the local issuer, which approves at once; the code it hands back is kept
 * for `transport.finishAuth(code)`. Pre-registered as the issuer's test client.
 */
export class InteractiveProvider implements OAuthClientProvider {
  #tokens: OAuthTokens | undefined
  #verifier = ''
  /** The code of the latest authorization, waiting for finishAuth. */
  code: string | undefined
  /** Every authorization URL the SDK sent the "user" to. */
  authorizations: URL[] = []

  constructor (private readonly scope: string, tokens?: OAuthTokens) {
    this.#tokens = tokens
  }

  get redirectUrl (): string {
    return REDIRECT_URL
  }

  get clientMetadata (): OAuthClientMetadata {
    return { redirect_uris: [REDIRECT_URL], client_name: 'tap step-up client', grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', scope: this.scope }
  }

  clientInformation (): OAuthClientInformationMixed {
    return { client_id: 'test-client', client_secret: 'test-secret' }
  }

  tokens (): OAuthTokens | undefined {
    return this.#tokens
  }

  saveTokens (tokens: OAuthTokens): void {
    this.#tokens = tokens
  }

  async redirectToAuthorization (url: URL): Promise<void> {
    this.authorizations.push(url)
    const res = await fetch(url, { redirect: 'manual' })
    const location = res.headers.get('location')
    if (res.status !== 302 || location === null) throw new Error(`authorization refused: ${res.status} ${await res.text()}`)
    this.code = new URL(location).searchParams.get('code') ?? undefined
  }

  saveCodeVerifier (verifier: string): void {
    this.#verifier = verifier
  }

  codeVerifier (): string {
    return this.#verifier
  }
}
