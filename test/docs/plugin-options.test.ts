import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

// docs/plugin-options.md is generated from the options interfaces: a change to an option
// (its type, default, meaning or error) without `npm run docs:options` fails here.
t.test('docs/plugin-options.md matches the options interfaces', async t => {
  const root = new URL('../../', import.meta.url).pathname
  // The generator is a development script, not shipped code: its own coverage is not collected.
  const { NODE_V8_COVERAGE: _coverage, ...env } = process.env
  const result = await promisify(execFile)(process.execPath, ['scripts/plugin-options-doc.mjs', '--check'], { cwd: root, env }).then(() => 'up to date', (err: { stderr: string }) => err.stderr.trim())
  t.equal(result, 'up to date')
})
