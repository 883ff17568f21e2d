/**
 * Browser origins on this machine (MCP Inspector at http://localhost:6274,
 * say): what both the Origin check and CORS allow when no origin is
 * configured. One definition, so the two never disagree.
 */
export const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/

export function isLoopbackOrigin (origin: string): boolean {
  return LOOPBACK_ORIGIN.test(origin)
}

/**
 * A host name or IP address that stays on this machine: `localhost`, 127.0.0.0/8,
 * `::1` (bracketed or not, as URL.hostname gives it) and IPv4-mapped 127.x.
 */
export function isLoopbackHostname (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127(\.\d{1,3}){3}$/.test(h)
}
