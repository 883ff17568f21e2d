/**
 * RFC 6570 URI templates, as far as resource templates need them: expressions
 * of level 1 (`{var}`, simple string expansion) and level 2 reserved
 * expansion (`{+var}`), matched against a URI to recover the variables.
 */
export class UriTemplate {
  readonly variables: readonly string[]
  readonly #pattern: RegExp

  constructor (readonly template: string) {
    const variables: string[] = []
    let source = '^'
    let last = 0
    for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
      const expression = match[1] as string
      // Level 1 and {+var}; other operators (# . / ; ? &) and modifiers (:3, *) are refused rather than misread.
      const parsed = /^(\+?)([A-Za-z0-9_]+)$/.exec(expression)
      if (parsed === null) throw new Error(`mcp: URI template ${JSON.stringify(template)}: {${expression}} is not supported (use {name} or {+name})`)
      const name = parsed[2] as string
      if (variables.includes(name)) throw new Error(`mcp: URI template ${JSON.stringify(template)} names {${name}} twice`)
      variables.push(name)
      source += escapeRegExp(template.slice(last, match.index)) + (parsed[1] === '+' ? '(.+?)' : '([^/?#]+?)')
      last = match.index + match[0].length
    }
    const rest = template.slice(last)
    if (/[{}]/.test(template.replace(/\{[^{}]*\}/g, ''))) throw new Error(`mcp: URI template ${JSON.stringify(template)} has an unbalanced brace`)
    if (variables.length === 0) throw new Error(`mcp: URI template ${JSON.stringify(template)} has no {variable}; register a plain resource instead`)
    this.variables = variables
    this.#pattern = new RegExp(source + escapeRegExp(rest) + '$')
  }

  /** The variables of a URI this template produces (percent-decoded), or undefined when it does not match. */
  match (uri: string): Record<string, string> | undefined {
    const found = this.#pattern.exec(uri)
    if (found === null) return undefined
    const values: Record<string, string> = {}
    for (let i = 0; i < this.variables.length; i++) {
      try {
        values[this.variables[i] as string] = decodeURIComponent(found[i + 1] as string)
      } catch {
        return undefined // a broken %-escape: no URI this template produces
      }
    }
    return values
  }

  /** The URI for these values (simple expansion percent-encodes all but unreserved characters, RFC 6570 §3.2.2). */
  expand (values: Record<string, string>): string {
    return this.template.replace(/\{(\+?)([A-Za-z0-9_]+)\}/g, (_all, plus: string, name: string) => {
      const value = values[name] ?? ''
      return plus === '+' ? encodeURI(value) : encodeURIComponent(value)
    })
  }
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
