/**
 * Browser origins on this machine (MCP Inspector at http://localhost:6274,
 * say): what both the Origin check and CORS allow when no origin is
 * configured. One definition, so the two never disagree.
 */
export const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/

export function isLoopbackOrigin (origin: string): boolean {
  return LOOPBACK_ORIGIN.test(origin)
}
