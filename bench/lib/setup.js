// What run.js and profile.js share: settings from the environment, the
// fixtures process, and this server's environment pointing at it.
import { readFileSync } from 'node:fs'
import { availableParallelism, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { startChild } from './children.js'

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))
export const SERVE = fileURLToPath(new URL('../servers/serve.js', import.meta.url))
export const MEMORY = fileURLToPath(new URL('../servers/memory.js', import.meta.url))
export const FIXTURES = fileURLToPath(new URL('../servers/fixtures.js', import.meta.url))

/** The protected resource: only an identifier (the token's audience), never dialled. */
export const RESOURCE = 'http://127.0.0.1:10000/mcp'
export const REQUIRED_SCOPE = 'news:read'
export const LOG_LEVEL = 'warn'

function positive (name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got ${JSON.stringify(raw)})`)
  return value
}

export function benchSettings () {
  return {
    duration: positive('BENCH_DURATION', 5),
    rounds: Math.round(positive('BENCH_ROUNDS', 3)),
    connections: Math.round(positive('BENCH_CONNECTIONS', 50)),
    warmup: positive('BENCH_WARMUP', 1),
    sessions: Math.round(positive('BENCH_SESSIONS', 10_000)),
    profile: process.env.BENCH_PROFILE === '1' || process.env.BENCH_PROFILE === 'true',
    profileDuration: positive('BENCH_PROFILE_DURATION', 10)
  }
}

/** bench/soak.js: SOAK_DURATION (s), SOAK_CONNECTIONS (workers, each one request at a time), SOAK_IDLE_TTL (s), SOAK_INTERVAL (s). */
export function soakSettings () {
  const connections = Math.round(positive('SOAK_CONNECTIONS', 32))
  if (connections < 4) throw new Error('SOAK_CONNECTIONS must be at least 4 (long-lived sessions, churn and idle workers)')
  return {
    duration: positive('SOAK_DURATION', 180),
    connections,
    idleTtlSec: Math.round(positive('SOAK_IDLE_TTL', 30)),
    intervalSec: positive('SOAK_INTERVAL', 10),
    redis: process.env.SOAK_REDIS === '1' || process.env.SOAK_REDIS === 'true'
  }
}

export function machine () {
  let cpu = 'unknown CPU'
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu
  } catch {}
  return { nproc: availableParallelism(), cpu, node: process.version, kernel: release(), memGb: totalmem() / 2 ** 30 }
}

/** The JWKS issuer and the fake Alpha Vantage; `subjects` asks for a token per subject as well (`tokens`). */
export async function startFixtures ({ subjects } = {}) {
  const { child, ready } = await startChild(FIXTURES, { name: 'fixtures', options: { audience: RESOURCE, scope: REQUIRED_SCOPE, subjects } })
  return { child, ...ready }
}

/** This server's environment (as a deployment would set it), pointed at the fixtures. */
export function thisServerEnv (fixtures, extra = {}) {
  return {
    NODE_ENV: 'production',
    MCP_RESOURCE: RESOURCE,
    AUTH_ISSUERS: fixtures.issuer,
    AUTH_JWKS_URI: fixtures.jwksUri,
    AUTH_REQUIRED_SCOPES: REQUIRED_SCOPE,
    ALPHA_VANTAGE_API_KEY: 'bench-key-not-real',
    ALPHA_VANTAGE_BASE_URL: fixtures.upstreamUrl,
    // The per-subject limiter stays on (its cost is part of every request) but
    // out of reach: the whole bench runs as one subject.
    MCP_RATE_LIMIT_MAX: '100000000',
    ...extra
  }
}

export function referenceOptions (fixtures, extra = {}) {
  return {
    kind: 'reference',
    jwksUri: fixtures.jwksUri,
    issuer: fixtures.issuer,
    audience: RESOURCE,
    requiredScope: REQUIRED_SCOPE,
    logLevel: LOG_LEVEL,
    ...extra
  }
}
