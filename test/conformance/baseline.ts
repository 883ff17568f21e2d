/**
 * How a conformance run is judged: which scenarios passed, and whether that
 * matches the expected-failures file. Pure functions, so that the runner's
 * verdict is tested without running the suite.
 */

/** One check as the suite writes it to `checks.json`. */
export interface Check {
  id: string
  name?: string
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED' | string
  errorMessage?: string
}

export interface ScenarioResult {
  scenario: string
  checks: Check[]
}

/** Scenario name → why it is expected to fail. */
export type ExpectedFailures = Record<string, string>

export type Verdict = 'pass' | 'fail' | 'expected-fail' | 'unexpected-pass'

export interface ScenarioVerdict {
  scenario: string
  verdict: Verdict
  passed: number
  failed: number
  warnings: number
  /** The first failing or warning check, `name: message`, when there is one. */
  problem?: string
  /** The reason from the expected-failures file, for an expected failure. */
  reason?: string
}

export interface Judgement {
  verdicts: ScenarioVerdict[]
  /** Entries of the file naming a scenario the suite does not have. */
  unknownEntries: string[]
  ok: boolean
}

/**
 * A scenario passes when no check failed or warned (warnings count, as in the
 * suite's own `--expected-failures` baseline: they mark a SHOULD the server
 * missed) and at least one check succeeded (a scenario that ran nothing proves nothing).
 */
export function scenarioPassed (checks: readonly Check[]): boolean {
  return checks.some(c => c.status === 'SUCCESS') && !checks.some(c => c.status === 'FAILURE' || c.status === 'WARNING')
}

/**
 * Reads an expected-failures file: `{ "server": { "<scenario>": "<reason>" } }`
 * (other top-level members, such as a `$comment`, are ignored). A malformed
 * file is an error, never an empty baseline.
 */
export function parseExpectedFailures (text: string): ExpectedFailures {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new Error(`expected-failures: not JSON (${(err as Error).message})`)
  }
  const server = (doc as { server?: unknown } | null)?.server
  if (server === null || typeof server !== 'object' || Array.isArray(server)) {
    throw new Error('expected-failures: "server" must be an object of scenario name → reason')
  }
  for (const [scenario, reason] of Object.entries(server)) {
    if (typeof reason !== 'string' || reason.trim() === '') throw new Error(`expected-failures: "${scenario}" needs a reason (a non-empty string)`)
  }
  return server as ExpectedFailures
}

/**
 * Compares a run with the expected failures. The run is good when every
 * scenario passed or failed as expected, and no expected failure passes now
 * (the file would be stale) nor names a scenario the suite no longer has.
 * `suiteScenarios` is every scenario the suite lists, so that the entries of
 * scenarios left out of a partial run are not reported as unknown.
 */
export function judge (results: readonly ScenarioResult[], expected: ExpectedFailures, suiteScenarios: readonly string[]): Judgement {
  const verdicts = results.map(({ scenario, checks }): ScenarioVerdict => {
    const passed = checks.filter(c => c.status === 'SUCCESS').length
    const failed = checks.filter(c => c.status === 'FAILURE').length
    const warnings = checks.filter(c => c.status === 'WARNING').length
    const reason = Object.hasOwn(expected, scenario) ? expected[scenario] : undefined
    const ok = scenarioPassed(checks)
    const verdict: Verdict = ok ? (reason === undefined ? 'pass' : 'unexpected-pass') : (reason === undefined ? 'fail' : 'expected-fail')
    const bad = checks.find(c => c.status === 'FAILURE') ?? checks.find(c => c.status === 'WARNING')
    const problem = bad !== undefined
      ? `${bad.name ?? bad.id}: ${bad.errorMessage ?? bad.status}`
      : (ok ? undefined : 'no check succeeded')
    return {
      scenario,
      verdict,
      passed,
      failed,
      warnings,
      ...(problem !== undefined && { problem }),
      ...(reason !== undefined && { reason })
    }
  })
  const known = new Set(suiteScenarios)
  const unknownEntries = Object.keys(expected).filter(s => !known.has(s))
  const ok = unknownEntries.length === 0 && verdicts.every(v => v.verdict === 'pass' || v.verdict === 'expected-fail')
  return { verdicts, unknownEntries, ok }
}

/** The summary the runner prints: one line a scenario, then the totals and what is wrong. */
export function formatSummary (judgement: Judgement): string {
  const mark: Record<Verdict, string> = { pass: 'PASS', fail: 'FAIL', 'expected-fail': 'XFAIL', 'unexpected-pass': 'XPASS' }
  const width = Math.max(0, ...judgement.verdicts.map(v => v.scenario.length))
  const lines = judgement.verdicts.map(v => {
    const counts = `${v.passed} passed, ${v.failed} failed${v.warnings > 0 ? `, ${v.warnings} warnings` : ''}`
    const note = v.verdict === 'expected-fail'
      ? ` (expected: ${v.reason as string})`
      : v.verdict === 'unexpected-pass' ? ' (listed as an expected failure: remove it from the file)' : ''
    const problem = v.verdict === 'fail' && v.problem !== undefined ? `\n${' '.repeat(width + 9)}${v.problem}` : ''
    return `${mark[v.verdict].padEnd(5)}  ${v.scenario.padEnd(width)}  ${counts}${note}${problem}`
  })
  const count = (verdict: Verdict): number => judgement.verdicts.filter(v => v.verdict === verdict).length
  lines.push('', `Scenarios: ${count('pass')}/${judgement.verdicts.length} passed, ${count('expected-fail')} expected failures, ` +
    `${count('fail')} unexpected failures, ${count('unexpected-pass')} expected failures that pass now`)
  for (const scenario of judgement.unknownEntries) lines.push(`The expected-failures file names "${scenario}", which the suite does not have: remove it.`)
  lines.push(judgement.ok ? 'Conformance: OK' : 'Conformance: FAILED')
  return lines.join('\n')
}

/** Scenario names from `conformance list --server` (lines `  - <name> [<spec versions>]`). */
export function parseScenarioList (output: string): string[] {
  const names: string[] = []
  for (const line of output.split('\n')) {
    const match = /^\s*-\s+([a-z0-9][a-z0-9-]*)(\s|$)/.exec(line)
    if (match !== null) names.push(match[1] as string)
  }
  return names
}
