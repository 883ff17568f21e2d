import t from 'tap'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { promisify } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { freePort } from '../helpers/mcp-app.js'
import { InteractiveProvider } from '../helpers/oauth-provider.js'

/**
 * The library as another team gets it: `npm pack`, the tarball unpacked into
 * a fresh app's node_modules beside its own zod, the example type-checked
 * against the shipped declarations, then run and used by the SDK client,
 * from the first 401 to a stepped-up tool call. Offline: the app's other
 * dependencies are links into this project's node_modules.
 */

// About 20 s of CPU (npm pack builds the library, tsc checks the example); the margin is for a busy machine.
t.setTimeout(300_000)
// tap's runner reads this comment and gives the file as long (its per-file timeout is 60 s).
t.comment('timeout=300000')
/**
 * The children (npm, tsc, the example) run without tap's coverage and loader
 * settings: they run no source of ours, and V8 coverage of the compiler alone
 * would take minutes.
 */
const env: Record<string, string | undefined> = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(NODE_V8_COVERAGE|NODE_OPTIONS|_TAPJS|TAP_)/.test(key))),
  // tap adds its process-info hooks to every child; this turns their coverage off.
  _TAPJS_PROCESSINFO_COVERAGE_: '0'
}
const execFileAsync = promisify(execFile)
const run = async (command: string, args: string[], opts: { cwd?: string, maxBuffer?: number } = {}): Promise<{ stdout: string }> =>
  await execFileAsync(command, args, { ...opts, env })
const root = new URL('../../', import.meta.url).pathname
const work = await mkdtemp(join(tmpdir(), 'fnmcp-pack-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, maxBuffer: 16 * 1024 * 1024 })
const [pack] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
const shipped = (pack?.files ?? []).map(f => f.path)
const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, { types: string, default: string } | string>
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
}

// The app: its own package.json, the tarball unpacked as `finance-news-mcp`, its own zod.
const app = join(work, 'app')
const modules = join(app, 'node_modules')
await mkdir(join(modules, 'finance-news-mcp'), { recursive: true })
await run('tar', ['-xzf', join(work, pack?.filename ?? ''), '-C', join(modules, 'finance-news-mcp'), '--strip-components=1'])
await cp(join(root, 'node_modules/zod'), join(modules, 'zod'), { recursive: true })
// The package's dependencies and the app's own (fastify, types, the compiler) as links: offline, and
// a dependency missing from package.json would not resolve from the unpacked package.
const linked = [...Object.keys(manifest.dependencies), '@types/node', 'typescript']
for (const name of linked) {
  await mkdir(dirname(join(modules, name)), { recursive: true })
  await symlink(join(root, 'node_modules', name), join(modules, name), 'dir')
}
await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'notes-app', private: true, type: 'module' }))
await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'build', skipLibCheck: true, types: ['node'] },
  include: ['notes-app.ts']
}))
await cp(join(root, 'examples/notes-app.ts'), join(app, 'notes-app.ts'))

// Everything is set up before the first test: the root test ends once its tests are done.
t.test('the tarball: every export with its declarations; no tests, sources, source maps or product code', async t => {
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    if (typeof target === 'string') continue
    t.ok(shipped.includes(target.default.slice(2)), `${subpath}: ${target.default}`)
    t.ok(shipped.includes(target.types.slice(2)), `${subpath}: ${target.types}`)
  }
  const unwanted = shipped.filter(p => !p.startsWith('examples/') && /(^|\/)test\/|\.map$|\.test\.|\.ts$(?<!\.d\.ts)|^dist\/(app|tools|routes|lib\/news)|plugins\/(config|alpha-vantage)\./.test(p))
  t.same(unwanted, [], 'nothing but the library (and the example, as documentation)')
  t.notOk('zod' in manifest.dependencies, 'zod is a peer dependency, never a second copy')
  t.ok(manifest.peerDependencies.zod.startsWith('^4'))
})

t.test('every relative import in the shipped files resolves to a shipped file', async t => {
  const unresolved: string[] = []
  for (const file of shipped.filter(p => p.endsWith('.js') || p.endsWith('.d.ts'))) {
    const text = await readFile(join(modules, 'finance-news-mcp', file), 'utf8')
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = posix.normalize(posix.join(posix.dirname(file), spec as string))
      const candidates = file.endsWith('.d.ts') ? [target.replace(/\.js$/, '.d.ts')] : [target]
      if (!candidates.some(c => shipped.includes(c))) unresolved.push(`${file} → ${spec as string}`)
    }
  }
  t.same(unresolved, [])
})

t.test('the example type-checks against the shipped declarations and works end to end', async t => {
  // A type error fails here with tsc's own message.
  await run(process.execPath, [join(modules, 'typescript/bin/tsc'), '-p', app], { cwd: app })
  t.ok(existsSync(join(app, 'build/notes-app.js')), 'compiled')
  t.same((await readdir(modules)).includes('finance-news-mcp'), true)

  const issuer = await LocalIssuer.start()
  t.teardown(() => issuer.close())
  const port = await freePort()
  const resource = `http://127.0.0.1:${port}/mcp`
  issuer.audience = [resource]
  const child: ChildProcess = spawn(process.execPath, ['build/notes-app.js'], {
    cwd: app,
    env: { ...env, PORT: String(port), RESOURCE_URL: resource, ISSUER_URL: issuer.url, JWKS_URI: issuer.jwksUri },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGTERM') })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => { output += String(chunk); if (output.includes('Server listening')) resolve() })
    child.stderr?.on('data', (chunk: Buffer) => { output += String(chunk) })
    child.once('exit', code => reject(new Error(`the example exited (${String(code)}): ${output}`)))
  })

  // A user who never authorized this app: the 401 leads the SDK to the issuer, for the scope the challenge names.
  const provider = new InteractiveProvider('')
  const connect = async (): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> => {
    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider })
    const client = new Client({ name: 'example-user', version: '1.0.0' })
    t.teardown(() => client.close())
    await client.connect(transport)
    return { client, transport }
  }
  const refusal = (err: unknown): boolean => err instanceof UnauthorizedError
  t.ok(await connect().then(() => false, refusal), 'first connection: sent to authorize')
  t.equal(provider.authorizations[0]?.searchParams.get('scope'), 'notes:read')
  const first = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider })
  await first.finishAuth(provider.code as string)

  const { client, transport } = await connect()
  const { tools } = await client.listTools()
  t.same(tools.map(tool => [tool.name, tool.inputSchema.type]), [['add_note', 'object']])

  // add_note needs notes:write: a 403 scope challenge, a second authorization, the retried call succeeds.
  t.ok(await client.callTool({ name: 'add_note', arguments: { text: 'hello' } }).then(() => false, refusal), 'a tool call: sent to step up')
  t.equal(provider.authorizations[1]?.searchParams.get('scope'), 'notes:read notes:write')
  await transport.finishAuth(provider.code as string)
  const result = await client.callTool({ name: 'add_note', arguments: { text: 'hello' } })
  t.same(result.structuredContent, { count: 1 })
  const invalid = await client.callTool({ name: 'add_note', arguments: { text: '' } })
  t.equal(invalid.isError, true, 'the example\'s own zod schema validates the arguments')

  const token = provider.tokens()?.access_token as string
  const notes = await fetch(`http://127.0.0.1:${port}/notes`, { headers: { authorization: `Bearer ${token}` } })
  t.same(await notes.json(), { caller: 'user_123', notes: [{ author: 'user_123', text: 'hello' }] }, 'an ordinary route, protected by config.auth')
  t.equal((await fetch(`http://127.0.0.1:${port}/notes`)).status, 401)
  const metadata = await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`)).json() as { scopes_supported: string[] }
  t.same(metadata.scopes_supported, ['notes:read', 'notes:write'])
})
