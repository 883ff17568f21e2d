import fp from 'fastify-plugin'
import envSchema from 'env-schema'
import type { FastifyInstance } from 'fastify'
import { isLoopbackHostname } from '../lib/http/loopback-origin.js'

/**
 * Configuration from the environment.
 *
 * The variable names of the ScaleKit MCP tutorial's .env work as they are
 * (including its misspelt SCALEKIT_RESOUCE_NAME / SCALEKIT_RESOUCE_DOCS_URL);
 * the generic AUTH_* overrides make any OAuth 2.1 issuer work. Everything the
 * rest of the app needs is derived here, once, into a typed `AppConfig`: no
 * other module reads the environment.
 */

export const ALPHA_VANTAGE_QUERY_URL = 'https://www.alphavantage.co/query'
export const ALPHA_VANTAGE_DEMO_KEY = 'demo'
export const DEFAULT_REQUIRED_SCOPE = 'news:read'
/** Asymmetric algorithms only: a shared-secret (HS*) algorithm would let anyone holding the public key forge tokens. */
export const SUPPORTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'] as const

export const DEFAULT_MAX_BATCH = 20
export const DEFAULT_MAX_BATCH_ANSWER_BYTES = 4 * 1024 * 1024
const timeoutSchema = {
  type: 'object',
  properties: {
    REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 3600000, default: 30000 },
    // Default: 10 s, or the request timeout when that is shorter.
    HEADERS_TIMEOUT_MS: { type: 'integer', minimum: 1000, maximum: 3600000 }
  }
} as const

const schema = {
  type: 'object',
  properties: {
    NODE_ENV: { type: 'string', default: 'development' },
    DEV_ISSUER: { type: 'string', enum: ['auto', 'on', 'off'], default: 'auto' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 10000 },

    ALPHA_VANTAGE_API_KEY: { type: 'string' },
    ALPHA_VANTAGE_BASE_URL: { type: 'string', default: ALPHA_VANTAGE_QUERY_URL },
    ALPHA_VANTAGE_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 120000, default: 10000 },
    ALPHA_VANTAGE_MAX_CONNECTIONS: { type: 'integer', minimum: 1, maximum: 256, default: 8 },
    ALPHA_VANTAGE_DAILY_LIMIT: { type: 'integer', minimum: 1, maximum: 10000000, default: 25 },
    ALPHA_VANTAGE_RETRIES: { type: 'integer', minimum: 0, maximum: 5, default: 2 },
    ALPHA_VANTAGE_RETRY_BASE_MS: { type: 'integer', minimum: 0, maximum: 60000, default: 250 },
    ALPHA_VANTAGE_CIRCUIT_THRESHOLD: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
    ALPHA_VANTAGE_CIRCUIT_COOLDOWN_SEC: { type: 'integer', minimum: 1, maximum: 3600, default: 60 },
    ALPHA_VANTAGE_SUBJECT_DAILY_SHARE: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.4 },
    ALPHA_VANTAGE_CALLS_PER_MINUTE: { type: 'integer', minimum: 0, maximum: 100000, default: 5 },
    ALPHA_VANTAGE_PACE_MAX_WAIT_SEC: { type: 'integer', minimum: 0, maximum: 600, default: 30 },
    ALPHA_VANTAGE_DAILY_LIMIT_PROBE_SEC: { type: 'integer', minimum: 10, maximum: 86400, default: 1800 },
    NEWS_CACHE_TTL_SEC: { type: 'integer', minimum: 0, maximum: 86400, default: 300 },
    NEWS_CACHE_MAX_ENTRIES: { type: 'integer', minimum: 1, maximum: 1000000, default: 500 },
    NEWS_CACHE_MAX_BYTES: { type: 'integer', minimum: 1024, maximum: 4294967296, default: 33554432 },
    NEWS_STALE_MAX_SEC: { type: 'integer', minimum: 0, maximum: 604800, default: 86400 },

    SCALEKIT_ENVIRONMENT_URL: { type: 'string' },
    SCALEKIT_CLIENT_ID: { type: 'string' },
    SCALEKIT_CLIENT_SECRET: { type: 'string' },
    SCALEKIT_RESOURCE_METADATA_URL: { type: 'string' },
    SCALEKIT_AUTHORIZATION_SERVERS: { type: 'string' },
    SCALEKIT_AUDIENCE_NAME: { type: 'string' },
    SCALEKIT_RESOURCE_NAME: { type: 'string' },
    SCALEKIT_RESOUCE_NAME: { type: 'string' },
    SCALEKIT_RESOURCE_DOCS_URL: { type: 'string' },
    SCALEKIT_RESOUCE_DOCS_URL: { type: 'string' },
    METADATA_JSON_RESPONSE: { type: 'string' },

    MCP_RESOURCE: { type: 'string' },
    AUTH_ISSUERS: { type: 'string' },
    AUTH_JWKS_URI: { type: 'string' },
    AUTH_AUDIENCES: { type: 'string' },
    AUTH_REQUIRED_SCOPES: { type: 'string', default: DEFAULT_REQUIRED_SCOPE },
    AUTH_ALGORITHMS: { type: 'string', default: 'RS256,ES256' },
    AUTH_CLOCK_TOLERANCE_SEC: { type: 'integer', minimum: 0, maximum: 300, default: 10 },
    AUTH_JWKS_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 5000 },
    AUTH_JWKS_COOLDOWN_SEC: { type: 'integer', minimum: 0, maximum: 3600, default: 30 },
    AUTH_JWKS_REFRESH_SEC: { type: 'integer', minimum: 10, maximum: 86400, default: 600 },
    AUTH_TOKEN_CACHE_SIZE: { type: 'integer', minimum: 0, maximum: 1000000, default: 10000 },

    ALLOWED_ORIGINS: { type: 'string' },
    MCP_SESSION_IDLE_TTL_SEC: { type: 'integer', minimum: 1, maximum: 86400, default: 900 },
    MCP_MAX_SESSIONS: { type: 'integer', minimum: 1, maximum: 1000000, default: 20000 },
    MCP_MAX_SESSIONS_PER_SUBJECT: { type: 'integer', minimum: 1, maximum: 1000000, default: 100 },
    MCP_STATELESS: { type: 'boolean', default: false },
    MCP_BODY_LIMIT: { type: 'integer', minimum: 1024, maximum: 67108864, default: 1048576 },
    MCP_RATE_LIMIT_MAX: { type: 'integer', minimum: 0, maximum: 100000000, default: 600 },
    MCP_RATE_LIMIT_WINDOW_SEC: { type: 'integer', minimum: 1, maximum: 86400, default: 60 },
    MCP_MAX_BATCH: { type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_MAX_BATCH },
    MCP_MAX_BATCH_ANSWER_BYTES: { type: 'integer', minimum: 65536, maximum: 268435456, default: DEFAULT_MAX_BATCH_ANSWER_BYTES },
    ...timeoutSchema.properties,

    REDIS_URL: { type: 'string' },
    REDIS_KEY_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9_.:{}-]{1,64}$', default: 'fnmcp:' },
    REDIS_CONNECT_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 5000 },
    REDIS_COMMAND_TIMEOUT_MS: { type: 'integer', minimum: 10, maximum: 60000, default: 2000 },

    METRICS_PORT: { type: 'integer', minimum: 1, maximum: 65535 },
    METRICS_HOST: { type: 'string', default: '0.0.0.0' },
    METRICS_TOKEN: { type: 'string', minLength: 16 },
    OTEL_EXPORTER_OTLP_ENDPOINT: { type: 'string' },
    OTEL_SERVICE_NAME: { type: 'string', default: 'finance-news-mcp' },
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: { type: 'integer', minimum: 0, maximum: 60000, default: 1000 },
    OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    OVERLOAD_MAX_HEAP_USED_BYTES: { type: 'integer', minimum: 0, default: 0 },
    OVERLOAD_MAX_RSS_BYTES: { type: 'integer', minimum: 0, default: 0 },
    OVERLOAD_RETRY_AFTER_SEC: { type: 'integer', minimum: 1, maximum: 3600, default: 10 }
  }
} as const

interface RawEnv {
  NODE_ENV: string
  DEV_ISSUER: 'auto' | 'on' | 'off'
  PORT: number
  ALPHA_VANTAGE_API_KEY?: string
  ALPHA_VANTAGE_BASE_URL: string
  ALPHA_VANTAGE_TIMEOUT_MS: number
  ALPHA_VANTAGE_MAX_CONNECTIONS: number
  ALPHA_VANTAGE_DAILY_LIMIT: number
  ALPHA_VANTAGE_RETRIES: number
  ALPHA_VANTAGE_RETRY_BASE_MS: number
  ALPHA_VANTAGE_CIRCUIT_THRESHOLD: number
  ALPHA_VANTAGE_CIRCUIT_COOLDOWN_SEC: number
  ALPHA_VANTAGE_SUBJECT_DAILY_SHARE: number
  ALPHA_VANTAGE_CALLS_PER_MINUTE: number
  ALPHA_VANTAGE_PACE_MAX_WAIT_SEC: number
  ALPHA_VANTAGE_DAILY_LIMIT_PROBE_SEC: number
  NEWS_CACHE_TTL_SEC: number
  NEWS_CACHE_MAX_ENTRIES: number
  NEWS_CACHE_MAX_BYTES: number
  NEWS_STALE_MAX_SEC: number
  SCALEKIT_ENVIRONMENT_URL?: string
  SCALEKIT_CLIENT_ID?: string
  SCALEKIT_CLIENT_SECRET?: string
  SCALEKIT_RESOURCE_METADATA_URL?: string
  SCALEKIT_AUTHORIZATION_SERVERS?: string
  SCALEKIT_AUDIENCE_NAME?: string
  SCALEKIT_RESOURCE_NAME?: string
  SCALEKIT_RESOUCE_NAME?: string
  SCALEKIT_RESOURCE_DOCS_URL?: string
  SCALEKIT_RESOUCE_DOCS_URL?: string
  METADATA_JSON_RESPONSE?: string
  MCP_RESOURCE?: string
  AUTH_ISSUERS?: string
  AUTH_JWKS_URI?: string
  AUTH_AUDIENCES?: string
  AUTH_REQUIRED_SCOPES: string
  AUTH_ALGORITHMS: string
  AUTH_CLOCK_TOLERANCE_SEC: number
  AUTH_JWKS_TIMEOUT_MS: number
  AUTH_JWKS_COOLDOWN_SEC: number
  AUTH_JWKS_REFRESH_SEC: number
  AUTH_TOKEN_CACHE_SIZE: number
  ALLOWED_ORIGINS?: string
  MCP_SESSION_IDLE_TTL_SEC: number
  MCP_MAX_SESSIONS: number
  MCP_MAX_SESSIONS_PER_SUBJECT: number
  MCP_STATELESS: boolean
  MCP_BODY_LIMIT: number
  MCP_RATE_LIMIT_MAX: number
  MCP_RATE_LIMIT_WINDOW_SEC: number
  MCP_MAX_BATCH: number
  MCP_MAX_BATCH_ANSWER_BYTES: number
  REQUEST_TIMEOUT_MS: number
  HEADERS_TIMEOUT_MS?: number
  REDIS_URL?: string
  REDIS_KEY_PREFIX: string
  REDIS_CONNECT_TIMEOUT_MS: number
  REDIS_COMMAND_TIMEOUT_MS: number
  METRICS_PORT?: number
  METRICS_HOST: string
  METRICS_TOKEN?: string
  OTEL_EXPORTER_OTLP_ENDPOINT?: string
  OTEL_SERVICE_NAME: string
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: number
  OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: number
  OVERLOAD_MAX_HEAP_USED_BYTES: number
  OVERLOAD_MAX_RSS_BYTES: number
  OVERLOAD_RETRY_AFTER_SEC: number
}

export interface AppConfig {
  production: boolean
  port: number
  alphaVantage: {
    apiKey: string
    usingDemoKey: boolean
    baseUrl: string
    timeoutMs: number
    maxConnections: number
    dailyLimit: number
    retries: number
    retryBaseMs: number
    circuitThreshold: number
    circuitCooldownMs: number
    /** Share of the daily limit one subject may spend on new questions. */
    subjectShare: number
    /** Upstream calls per minute; 0 is unpaced. */
    callsPerMinute: number
    paceMaxWaitMs: number
    /** After Alpha Vantage's "daily limit", ask again after this long. */
    dailyLimitProbeMs: number
  }
  newsCache: {
    ttlMs: number
    maxEntries: number
    maxBytes: number
    /** How long past its TTL an answer may still be served when the upstream fails. */
    staleMaxMs: number
  }
  auth: {
    /** `development`: no issuer configured, the built-in development issuer signs tokens. */
    mode: 'issuer' | 'development'
    /** DEV_ISSUER=on: the development issuer runs off loopback too (never in production). */
    devIssuerForced: boolean
    issuers: string[]
    audiences: string[]
    /** Absent in development mode, where the development issuer supplies its keys directly. */
    jwksUri?: string
    requiredScopes: string[]
    algorithms: string[]
    clockToleranceSec: number
    jwksTimeoutMs: number
    jwksCooldownMs: number
    jwksRefreshMs: number
    tokenCacheSize: number
    clientId?: string
  }
  resource: {
    /** The protected resource identifier (RFC 9728 §2 `resource`, RFC 8707 audience), exactly as configured. */
    resource: string
    metadataUrl: string
    authorizationServers: string[]
    scopesSupported: string[]
    resourceName?: string
    resourceDocumentation?: string
    /** Extra members from METADATA_JSON_RESPONSE, published as they are. */
    extra: Record<string, unknown>
  }
  mcp: {
    allowedOrigins: string[]
    sessionIdleTtlMs: number
    maxSessions: number
    maxSessionsPerSubject: number
    stateless: boolean
    bodyLimit: number
    /** Requests per subject per window on /mcp; 0 is off. */
    rateLimitMax: number
    rateLimitWindowMs: number
    /** Messages in one JSON-RPC batch (2025-03-26 only); each counts against the rate limit. */
    maxBatch: number
    /** A batch's answer stops growing past this; the requests left get an error each. */
    maxBatchAnswerBytes: number
  }
  /** Read once more, from the environment, by app.ts's server `options` (see `serverTimeouts`); here for the boot check. */
  http: {
    requestTimeoutMs: number
    headersTimeoutMs: number
  }
  /** Shared state for several replicas; absent: everything stays in this process's memory. */
  redis?: {
    url: string
    keyPrefix: string
    connectTimeoutMs: number
    commandTimeoutMs: number
  }
  /** Prometheus metrics: absent unless METRICS_PORT or METRICS_TOKEN says where they may be read. */
  metrics?: {
    /** A listener of its own (METRICS_HOST:METRICS_PORT), not exposed with the service. */
    port?: number
    host: string
    /** `GET /metrics` on the main port with `Authorization: Bearer <token>`. */
    token?: string
  }
  /** OpenTelemetry traces: absent unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  tracing?: {
    endpoint: string
    serviceName: string
  }
  /** 503 + Retry-After before the process collapses; 0 turns a threshold off. */
  overload: {
    maxEventLoopDelayMs: number
    maxEventLoopUtilization: number
    maxHeapUsedBytes: number
    maxRssBytes: number
    retryAfterSec: number
  }
}

export class ConfigError extends Error {
  code = 'FST_MCP_CONFIG_INVALID'
  constructor (variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

function list (value: string | undefined): string[] {
  if (value === undefined) return []
  return value.split(/[\s,]+/).map(s => s.trim()).filter(s => s.length > 0)
}

function absoluteUrl (variable: string, value: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(variable, `must be an absolute http(s) URL (got ${JSON.stringify(value)})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(variable, `must be an http(s) URL (got ${JSON.stringify(value)})`)
  }
  return url
}

function redisUrl (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    // Never echo the value: a Redis URL may carry a password.
    throw new ConfigError('REDIS_URL', 'must be a redis:// or rediss:// URL (it does not parse as a URL)')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL (got the scheme ${JSON.stringify(url.protocol)})`)
  }
  if (url.hostname === '') throw new ConfigError('REDIS_URL', 'must name a host')
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new ConfigError('REDIS_URL', 'must end with a database number (/0 … /99) or nothing')
  return value
}

function urlList (variable: string, value: string | undefined): string[] {
  const values = list(value)
  for (const v of values) absoluteUrl(variable, v)
  return values
}

function withoutTrailingSlash (value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value
}

const RESOURCE_ID = /\/resources\/(res_[A-Za-z0-9_-]+)\/?$/
const WELL_KNOWN_PRM = '/.well-known/oauth-protected-resource'

/**
 * RFC 9728 §3.1: the metadata URL is the resource's origin, then the
 * well-known prefix, then the resource's path (none when the path is `/`).
 */
export function metadataUrlFor (resource: string): string {
  const url = new URL(resource)
  const path = url.pathname === '/' ? '' : url.pathname
  return `${url.origin}${WELL_KNOWN_PRM}${path}`
}

/** The inverse of `metadataUrlFor`: what resource a tutorial-style metadata URL describes. */
function resourceForMetadataUrl (metadataUrl: URL): string | undefined {
  if (!metadataUrl.pathname.startsWith(WELL_KNOWN_PRM)) return undefined
  const rest = metadataUrl.pathname.slice(WELL_KNOWN_PRM.length)
  return `${metadataUrl.origin}${rest === '' ? '/' : rest}`
}

function parseMetadataJson (value: string | undefined): Record<string, unknown> {
  if (value === undefined || value.trim() === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw new ConfigError('METADATA_JSON_RESPONSE', 'must be a JSON object (it does not parse as JSON)')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('METADATA_JSON_RESPONSE', 'must be a JSON object')
  }
  return parsed as Record<string, unknown>
}

function stringArray (variable: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) {
    throw new ConfigError(variable, 'must list strings')
  }
  return value
}

function readEnv<T = RawEnv> (env: Env, from: { properties: object } = schema): T {
  // Empty strings count as unset: `FOO=` in a .env file means "not configured".
  const data: Env = {}
  for (const key of Object.keys(from.properties)) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') data[key] = value.trim()
  }
  try {
    return envSchema<T>({ schema: from, data, dotenv: false })
  } catch (err) {
    // ajv says e.g. "env/PORT must be <= 65535": keep the variable's name, drop the prefix.
    const message = (err as Error).message.replace(/env\//g, '').split(', ')[0]
    const [variable, ...rest] = message.split(' ')
    throw new ConfigError(variable, rest.join(' '))
  }
}

/**
 * How long a client may take to send a whole request (REQUEST_TIMEOUT_MS,
 * default 30 s) and its headers (HEADERS_TIMEOUT_MS, default 10 s or the
 * request timeout if shorter): past that Node answers 408 and closes the
 * connection, so a client that declares a body and trickles it cannot hold
 * a connection (and its buffers) open. Only receiving the request is timed:
 * a long tool call or an SSE stream is not cut.
 *
 * Exported on its own because fastify-cli builds the server from app.ts's
 * `options` before any plugin runs, so the config plugin cannot hand these
 * over; app.ts calls this with process.env, and loadConfig calls it too, so
 * a bad value fails at boot with the usual one-line message.
 */
export function serverTimeouts (env: Env): AppConfig['http'] {
  const raw = readEnv<Pick<RawEnv, 'REQUEST_TIMEOUT_MS' | 'HEADERS_TIMEOUT_MS'>>(env, timeoutSchema)
  const requestTimeoutMs = raw.REQUEST_TIMEOUT_MS
  const headersTimeoutMs = raw.HEADERS_TIMEOUT_MS ?? Math.min(10_000, requestTimeoutMs)
  // Node refuses a headers timeout longer than the request timeout (it could never fire).
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError('HEADERS_TIMEOUT_MS', `must be <= REQUEST_TIMEOUT_MS (${requestTimeoutMs})`)
  return { requestTimeoutMs, headersTimeoutMs }
}

export function loadConfig (env: Env): AppConfig {
  const raw = readEnv(env)
  // `Production`, `prod`, `PRODUCTION`: whoever typed it meant production.
  const production = /^prod(uction)?$/i.test(raw.NODE_ENV)

  const apiKey = raw.ALPHA_VANTAGE_API_KEY ?? ALPHA_VANTAGE_DEMO_KEY
  absoluteUrl('ALPHA_VANTAGE_BASE_URL', raw.ALPHA_VANTAGE_BASE_URL)

  const metadataJson = parseMetadataJson(raw.METADATA_JSON_RESPONSE)
  const metadataServers = stringArray('METADATA_JSON_RESPONSE', metadataJson.authorization_servers)
  const metadataScopes = stringArray('METADATA_JSON_RESPONSE', metadataJson.scopes_supported)

  const environmentUrl = raw.SCALEKIT_ENVIRONMENT_URL === undefined
    ? undefined
    : withoutTrailingSlash(absoluteUrl('SCALEKIT_ENVIRONMENT_URL', raw.SCALEKIT_ENVIRONMENT_URL).href)
  const scalekitServers = urlList('SCALEKIT_AUTHORIZATION_SERVERS', raw.SCALEKIT_AUTHORIZATION_SERVERS)
  const explicitIssuers = urlList('AUTH_ISSUERS', raw.AUTH_ISSUERS)
  const explicitJwksUri = raw.AUTH_JWKS_URI === undefined ? undefined : absoluteUrl('AUTH_JWKS_URI', raw.AUTH_JWKS_URI).href

  // The ScaleKit resource id (res_…) is the last path segment of its authorization server URL.
  const resourceIds = new Set<string>()
  for (const server of [...scalekitServers, ...(metadataServers ?? [])]) {
    const match = RESOURCE_ID.exec(new URL(server).pathname)
    if (match?.[1] !== undefined) resourceIds.add(match[1])
  }

  // Resource identifier: explicit, then the dashboard's metadata, then the
  // audience (ScaleKit's resource identifier), then the tutorial's metadata
  // URL, then this server on localhost.
  const metadataUrlSetting = raw.SCALEKIT_RESOURCE_METADATA_URL === undefined
    ? undefined
    : absoluteUrl('SCALEKIT_RESOURCE_METADATA_URL', raw.SCALEKIT_RESOURCE_METADATA_URL)
  const audienceNames = list(raw.SCALEKIT_AUDIENCE_NAME)
  // Each candidate keeps the name of the variable it came from, so that an
  // error names the variable to fix.
  const candidates: Array<[string, string | undefined]> = [
    ['MCP_RESOURCE', raw.MCP_RESOURCE],
    ['METADATA_JSON_RESPONSE', typeof metadataJson.resource === 'string' ? metadataJson.resource : undefined],
    ['SCALEKIT_AUDIENCE_NAME', audienceNames.find(a => /^https?:\/\//.test(a))],
    ['SCALEKIT_RESOURCE_METADATA_URL', metadataUrlSetting === undefined ? undefined : resourceForMetadataUrl(metadataUrlSetting)],
    ['PORT', `http://localhost:${raw.PORT}/mcp`]
  ]
  const [resourceVariable, resource] = candidates.find((c): c is [string, string] => c[1] !== undefined) as [string, string]
  absoluteUrl(resourceVariable, resource)
  if (new URL(resource).hash !== '') throw new ConfigError(resourceVariable, 'must not give a resource identifier with a fragment (RFC 9728 §1.2)')

  const issuerConfigured = environmentUrl !== undefined || explicitIssuers.length > 0 || explicitJwksUri !== undefined
  const mode: AppConfig['auth']['mode'] = issuerConfigured ? 'issuer' : 'development'
  if (mode === 'development' && production) {
    throw new ConfigError('SCALEKIT_ENVIRONMENT_URL', 'is required when NODE_ENV=production (the development issuer is refused in production; or set AUTH_ISSUERS and AUTH_JWKS_URI)')
  }
  if (mode === 'development' && raw.DEV_ISSUER === 'off') {
    throw new ConfigError('SCALEKIT_ENVIRONMENT_URL', 'is required when DEV_ISSUER=off (or set AUTH_ISSUERS and AUTH_JWKS_URI)')
  }
  // The development issuer hands out tokens to anyone who clicks: it is for
  // this machine only, unless someone asks for it by name.
  if (mode === 'development' && raw.DEV_ISSUER !== 'on' && !isLoopbackHostname(new URL(resource).hostname)) {
    throw new ConfigError(resourceVariable, `is ${JSON.stringify(resource)}, not on loopback, and no issuer is configured: set SCALEKIT_ENVIRONMENT_URL (or AUTH_ISSUERS and AUTH_JWKS_URI), or DEV_ISSUER=on to run the development issuer there anyway`)
  }

  let issuers: string[] = []
  let jwksUri: string | undefined
  if (mode === 'issuer') {
    // ScaleKit signs with the environment as issuer, or (per MCP server) with
    // `<env>/resources/res_…`: accept both unless told otherwise.
    const derived = environmentUrl === undefined
      ? []
      : [environmentUrl, ...scalekitServers.map(withoutTrailingSlash), ...[...resourceIds].map(id => `${environmentUrl}/resources/${id}`)]
    issuers = explicitIssuers.length > 0 ? explicitIssuers : [...new Set(derived)]
    if (issuers.length === 0) throw new ConfigError('AUTH_ISSUERS', 'is required when AUTH_JWKS_URI is set without SCALEKIT_ENVIRONMENT_URL')
    jwksUri = explicitJwksUri ?? (environmentUrl === undefined ? undefined : `${environmentUrl}/keys`)
    if (jwksUri === undefined) throw new ConfigError('AUTH_JWKS_URI', 'is required when AUTH_ISSUERS is set without SCALEKIT_ENVIRONMENT_URL')
  }

  const audiences = raw.AUTH_AUDIENCES !== undefined
    ? list(raw.AUTH_AUDIENCES)
    : [...new Set([...audienceNames, resource, ...resourceIds])]

  const requiredScopes = list(raw.AUTH_REQUIRED_SCOPES)
  const algorithms = list(raw.AUTH_ALGORITHMS)
  for (const alg of algorithms) {
    if (!(SUPPORTED_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new ConfigError('AUTH_ALGORITHMS', `lists ${JSON.stringify(alg)}; allowed: ${SUPPORTED_ALGORITHMS.join(', ')}`)
    }
  }
  if (algorithms.length === 0) throw new ConfigError('AUTH_ALGORITHMS', 'must list at least one algorithm')

  const authorizationServers = scalekitServers.length > 0
    ? scalekitServers
    : metadataServers ?? (explicitIssuers.length > 0 ? explicitIssuers : (environmentUrl === undefined ? [] : [environmentUrl]))

  const allowedOrigins = list(raw.ALLOWED_ORIGINS)
  for (const origin of allowedOrigins) {
    if (origin !== '*' && absoluteUrl('ALLOWED_ORIGINS', origin).origin !== origin) {
      throw new ConfigError('ALLOWED_ORIGINS', `lists ${JSON.stringify(origin)}, which is not an origin (scheme://host[:port], no path)`)
    }
  }

  const { resource: _r, authorization_servers: _a, scopes_supported: _s, ...extra } = metadataJson
  return {
    production,
    port: raw.PORT,
    alphaVantage: {
      apiKey,
      usingDemoKey: apiKey === ALPHA_VANTAGE_DEMO_KEY,
      baseUrl: raw.ALPHA_VANTAGE_BASE_URL,
      timeoutMs: raw.ALPHA_VANTAGE_TIMEOUT_MS,
      maxConnections: raw.ALPHA_VANTAGE_MAX_CONNECTIONS,
      dailyLimit: raw.ALPHA_VANTAGE_DAILY_LIMIT,
      retries: raw.ALPHA_VANTAGE_RETRIES,
      retryBaseMs: raw.ALPHA_VANTAGE_RETRY_BASE_MS,
      circuitThreshold: raw.ALPHA_VANTAGE_CIRCUIT_THRESHOLD,
      circuitCooldownMs: raw.ALPHA_VANTAGE_CIRCUIT_COOLDOWN_SEC * 1000,
      subjectShare: raw.ALPHA_VANTAGE_SUBJECT_DAILY_SHARE,
      callsPerMinute: raw.ALPHA_VANTAGE_CALLS_PER_MINUTE,
      paceMaxWaitMs: raw.ALPHA_VANTAGE_PACE_MAX_WAIT_SEC * 1000,
      dailyLimitProbeMs: raw.ALPHA_VANTAGE_DAILY_LIMIT_PROBE_SEC * 1000
    },
    newsCache: {
      ttlMs: raw.NEWS_CACHE_TTL_SEC * 1000,
      maxEntries: raw.NEWS_CACHE_MAX_ENTRIES,
      maxBytes: raw.NEWS_CACHE_MAX_BYTES,
      staleMaxMs: raw.NEWS_STALE_MAX_SEC * 1000
    },
    auth: {
      mode,
      devIssuerForced: raw.DEV_ISSUER === 'on',
      issuers,
      audiences,
      jwksUri,
      requiredScopes,
      algorithms,
      clockToleranceSec: raw.AUTH_CLOCK_TOLERANCE_SEC,
      jwksTimeoutMs: raw.AUTH_JWKS_TIMEOUT_MS,
      jwksCooldownMs: raw.AUTH_JWKS_COOLDOWN_SEC * 1000,
      jwksRefreshMs: raw.AUTH_JWKS_REFRESH_SEC * 1000,
      tokenCacheSize: raw.AUTH_TOKEN_CACHE_SIZE,
      clientId: raw.SCALEKIT_CLIENT_ID
    },
    resource: {
      resource,
      metadataUrl: metadataUrlSetting?.href ?? metadataUrlFor(resource),
      authorizationServers,
      scopesSupported: metadataScopes ?? requiredScopes,
      resourceName: raw.SCALEKIT_RESOURCE_NAME ?? raw.SCALEKIT_RESOUCE_NAME ?? (typeof extra.resource_name === 'string' ? extra.resource_name : undefined),
      resourceDocumentation: urlList('SCALEKIT_RESOURCE_DOCS_URL', raw.SCALEKIT_RESOURCE_DOCS_URL ?? raw.SCALEKIT_RESOUCE_DOCS_URL)[0] ??
        (typeof extra.resource_documentation === 'string' ? extra.resource_documentation : undefined),
      extra
    },
    mcp: {
      allowedOrigins,
      sessionIdleTtlMs: raw.MCP_SESSION_IDLE_TTL_SEC * 1000,
      maxSessions: raw.MCP_MAX_SESSIONS,
      maxSessionsPerSubject: raw.MCP_MAX_SESSIONS_PER_SUBJECT,
      stateless: raw.MCP_STATELESS,
      bodyLimit: raw.MCP_BODY_LIMIT,
      rateLimitMax: raw.MCP_RATE_LIMIT_MAX,
      rateLimitWindowMs: raw.MCP_RATE_LIMIT_WINDOW_SEC * 1000,
      maxBatch: raw.MCP_MAX_BATCH,
      maxBatchAnswerBytes: raw.MCP_MAX_BATCH_ANSWER_BYTES
    },
    http: serverTimeouts(env),
    ...(raw.REDIS_URL === undefined
      ? {}
      : {
          redis: {
            url: redisUrl(raw.REDIS_URL),
            keyPrefix: raw.REDIS_KEY_PREFIX,
            connectTimeoutMs: raw.REDIS_CONNECT_TIMEOUT_MS,
            commandTimeoutMs: raw.REDIS_COMMAND_TIMEOUT_MS
          }
        }),
    ...(raw.METRICS_PORT !== undefined || raw.METRICS_TOKEN !== undefined
      ? { metrics: { port: raw.METRICS_PORT, host: raw.METRICS_HOST, token: raw.METRICS_TOKEN } }
      : {}),
    ...(raw.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined
      ? { tracing: { endpoint: absoluteUrl('OTEL_EXPORTER_OTLP_ENDPOINT', raw.OTEL_EXPORTER_OTLP_ENDPOINT).href, serviceName: raw.OTEL_SERVICE_NAME } }
      : {}),
    overload: {
      maxEventLoopDelayMs: raw.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: raw.OVERLOAD_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: raw.OVERLOAD_MAX_HEAP_USED_BYTES,
      maxRssBytes: raw.OVERLOAD_MAX_RSS_BYTES,
      retryAfterSec: raw.OVERLOAD_RETRY_AFTER_SEC
    }
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * The log level, read before the server exists (it is a server option):
 * LOG_LEVEL, else fastify-cli's FASTIFY_LOG_LEVEL, else info.
 */
export function logLevelFrom (env: Env): string {
  for (const variable of ['LOG_LEVEL', 'FASTIFY_LOG_LEVEL']) {
    const value = env[variable]?.trim().toLowerCase()
    if (value === undefined || value === '') continue
    if (!(LOG_LEVELS as readonly string[]).includes(value)) {
      throw new ConfigError(variable, `must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(env[variable])})`)
    }
    return value
  }
  return 'info'
}

export interface ConfigPluginOptions {
  /** The environment to read; defaults to `process.env`. Tests pass their own. */
  env?: Env
}

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
  }
}

async function configPlugin (fastify: FastifyInstance, opts: ConfigPluginOptions): Promise<void> {
  fastify.decorate('config', loadConfig(opts.env ?? process.env))
}

export default fp(configPlugin, { name: 'config', fastify: '5.x' })
