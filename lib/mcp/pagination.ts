import { RpcError, RpcFailure } from './protocol.js'

/** What a list method answers with: one page, and where the next one starts (MCP utilities "Pagination"). */
export interface Page<T> {
  items: T[]
  nextCursor: string | undefined
}

/** Cursors are short: anything longer is not one this server issued. */
const MAX_CURSOR_LENGTH = 64
const CURSOR = /^p1\.(\d{1,9})$/

function encodeCursor (offset: number): string {
  return Buffer.from(`p1.${offset}`, 'utf8').toString('base64url')
}

/**
 * The offset a cursor stands for, or an InvalidParams failure. MCP utilities
 * "Pagination", Error Handling: an invalid cursor SHOULD be -32602. The
 * cursor is opaque to clients (base64url of a versioned offset); the lists
 * it pages only ever grow, so an offset stays meaningful between pages.
 */
export function cursorOffset (cursor: unknown, length: number): number {
  if (cursor === undefined) return 0
  if (typeof cursor !== 'string' || cursor.length > MAX_CURSOR_LENGTH) {
    throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: cursor must be a nextCursor this server returned')
  }
  const match = CURSOR.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  const offset = match === null ? Number.NaN : Number(match[1])
  // A cursor this server issued points inside the list (never at 0: the first page has none).
  if (!(offset > 0 && offset <= length) || encodeCursor(offset) !== cursor) {
    throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: cursor must be a nextCursor this server returned')
  }
  return offset
}

/** One page of `items` from `cursor` (undefined: the first page). */
export function paginate<T> (items: readonly T[], cursor: unknown, pageSize: number): Page<T> {
  const offset = cursorOffset(cursor, items.length)
  const end = offset + pageSize
  return { items: items.slice(offset, end), nextCursor: end < items.length ? encodeCursor(end) : undefined }
}
