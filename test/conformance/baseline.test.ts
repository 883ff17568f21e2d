import t from 'tap'
import { readFileSync } from 'node:fs'
import { formatSummary, judge, parseExpectedFailures, parseScenarioList, scenarioPassed, type Check } from './baseline.js'

const ok = (id = 'a'): Check => ({ id, name: id, status: 'SUCCESS' })
const bad = (id = 'b', errorMessage = 'it broke'): Check => ({ id, name: id, status: 'FAILURE', errorMessage })
const warn = (id = 'w'): Check => ({ id, name: id, status: 'WARNING', errorMessage: 'a SHOULD missed' })
const info = (id = 'i'): Check => ({ id, status: 'INFO' })

t.test('a scenario passes with a success and neither a failure nor a warning', async t => {
  t.ok(scenarioPassed([ok(), info()]))
  t.notOk(scenarioPassed([ok(), bad()]), 'a failure fails it')
  t.notOk(scenarioPassed([ok(), warn()]), 'a warning fails it, as in the suite\'s own baseline check')
  t.notOk(scenarioPassed([info(), info()]), 'only INFO checks: nothing was proven (SSE polling answered with JSON)')
  t.notOk(scenarioPassed([]), 'no checks at all')
})

t.test('the expected-failures file: scenario → reason, anything malformed refused', async t => {
  t.same(parseExpectedFailures('{"$comment":"why","server":{"x":"because"}}'), { x: 'because' })
  t.same(parseExpectedFailures('{"server":{}}'), {})
  t.throws(() => parseExpectedFailures('{server:'), /expected-failures: not JSON/)
  t.throws(() => parseExpectedFailures('null'), /"server" must be an object/)
  t.throws(() => parseExpectedFailures('{"server":["x"]}'), /"server" must be an object/, 'the suite\'s YAML list shape is not enough: a reason is required')
  t.throws(() => parseExpectedFailures('{"server":{"x":""}}'), /"x" needs a reason/)
  t.throws(() => parseExpectedFailures('{"server":{"x":1}}'), /"x" needs a reason/)
  // The repository's own file is well-formed and every entry names a scenario of the suite.
  const file = parseExpectedFailures(readFileSync(new URL('../../conformance/expected-failures.json', import.meta.url), 'utf8'))
  const listed = Object.keys(file)
  t.ok(listed.every(s => /^(redis:)?[a-z0-9-]+$/.test(s)), 'scenario names, of the memory or the redis pass')
})

t.test('a run is judged against the expected failures', async t => {
  const suite = ['one', 'two', 'three', 'four']
  const results = [
    { scenario: 'one', checks: [ok()] },
    { scenario: 'two', checks: [ok(), bad('tools', 'Unknown tool: test_x')] },
    { scenario: 'three', checks: [bad()] },
    { scenario: 'four', checks: [ok()] }
  ]

  const clean = judge(results, { two: 'not built yet', three: 'the SDK cannot' }, suite)
  t.ok(clean.ok, 'every failure expected, every pass unlisted')
  t.same(clean.verdicts.map(v => v.verdict), ['pass', 'expected-fail', 'expected-fail', 'pass'])
  t.match(clean.verdicts[1], { passed: 1, failed: 1, warnings: 0, problem: 'tools: Unknown tool: test_x', reason: 'not built yet' })

  const unexpected = judge(results, { two: 'not built yet' }, suite)
  t.notOk(unexpected.ok, 'a failure not in the file fails the run')
  t.equal(unexpected.verdicts[2]?.verdict, 'fail')

  const stale = judge(results, { two: 'x', three: 'y', four: 'fixed since' }, suite)
  t.notOk(stale.ok, 'an expected failure that passes now fails the run: the file stays honest')
  t.equal(stale.verdicts[3]?.verdict, 'unexpected-pass')

  const unknown = judge(results, { two: 'x', three: 'y', gone: 'dropped from the suite' }, suite)
  t.notOk(unknown.ok, 'an entry naming no scenario of the suite fails the run')
  t.same(unknown.unknownEntries, ['gone'])

  const partial = judge([results[0] as typeof results[0]], { two: 'x', three: 'y' }, suite)
  t.ok(partial.ok, 'a partial run does not call the entries of scenarios it left out unknown or stale')

  const warned = judge([{ scenario: 'one', checks: [ok(), warn()] }], {}, suite)
  t.match(warned.verdicts[0], { verdict: 'fail', warnings: 1, problem: 'w: a SHOULD missed' })
  const empty = judge([{ scenario: 'one', checks: [info()] }], {}, suite)
  t.match(empty.verdicts[0], { verdict: 'fail', problem: 'no check succeeded' })
  const unnamed = judge([{ scenario: 'one', checks: [{ id: 'runner', status: 'FAILURE' }] }], {}, suite)
  t.equal(unnamed.verdicts[0]?.problem, 'runner: FAILURE', 'a check without a name or message still says which it is')
})

t.test('the summary says what passed, what was expected and what is wrong', async t => {
  const judgement = judge([
    { scenario: 'ping', checks: [ok()] },
    { scenario: 'tools-call-sampling', checks: [bad('ToolsCallSampling', 'Unknown tool: test_sampling')] },
    { scenario: 'prompts-list', checks: [bad()] },
    { scenario: 'dns', checks: [ok(), warn()] },
    { scenario: 'fixed', checks: [ok()] }
  ], { 'prompts-list': 'prompts come with issue10-features', fixed: 'was broken', gone: 'no longer in the suite' },
  ['ping', 'tools-call-sampling', 'prompts-list', 'dns', 'fixed'])
  const text = formatSummary(judgement)
  t.match(text, /^PASS {3}ping {17}1 passed, 0 failed$/m)
  t.match(text, /^FAIL {3}tools-call-sampling {2}0 passed, 1 failed\n {28}ToolsCallSampling: Unknown tool: test_sampling$/m)
  t.match(text, /^XFAIL {2}prompts-list .*\(expected: prompts come with issue10-features\)$/m)
  t.match(text, /^FAIL {3}dns .*1 passed, 0 failed, 1 warnings$/m)
  t.match(text, /^XPASS {2}fixed .*remove it from the file/m)
  t.match(text, /Scenarios: 1\/5 passed, 1 expected failures, 2 unexpected failures, 1 expected failures that pass now/)
  t.match(text, /names "gone", which the suite does not have/)
  t.match(text, /Conformance: FAILED$/)
  t.match(formatSummary(judge([{ scenario: 'ping', checks: [ok()] }], {}, ['ping'])), /Scenarios: 1\/1 passed.*\nConformance: OK$/)
})

t.test('the scenario names come from the suite\'s own listing', async t => {
  const listing = [
    'Server scenarios (test against a server):',
    '  - server-initialize [2025-06-18,2025-11-25]',
    '  - json-schema-2020-12 [2025-11-25]',
    '  - dns-rebinding-protection',
    '',
    'Some other line - not a scenario'
  ].join('\n')
  t.same(parseScenarioList(listing), ['server-initialize', 'json-schema-2020-12', 'dns-rebinding-protection'])
  t.same(parseScenarioList(''), [])
})
