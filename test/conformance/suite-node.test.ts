import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'

const root = new URL('../../', import.meta.url)

t.test('the suite\'s Node comes from the node dev dependency, and only the suite uses it', async t => {
  const suiteNode = new URL('node_modules/node/bin/node', root).pathname
  const { stdout } = await promisify(execFile)(suiteNode, ['--version'])
  t.ok(Number(/^v(\d+)\./.exec(stdout)?.[1]) >= 22, `the conformance suite needs Node 22+: ${stdout.trim()}`)
  // The package links itself as node_modules/.bin/node, first on the PATH of every npm script:
  // the postinstall step removes the link, so that tests, builds and npm start keep the system Node.
  t.notOk(existsSync(new URL('node_modules/.bin/node', root)), 'no node_modules/.bin/node')
})
