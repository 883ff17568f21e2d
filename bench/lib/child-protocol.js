// The child side of bench/lib/children.js: wait for `start`, answer `ask`,
// exit on `stop` or when the parent goes away (the IPC channel closes).

/**
 * @param {(options: object) => Promise<object>} start  builds and starts; resolves with what `ready` carries
 * @param {Record<string, () => unknown>} answers  what `ask` can ask for
 * @param {() => Promise<void>} stop  closes what start opened
 */
export function childProtocol (start, answers = {}, stop = async () => {}) {
  if (typeof process.send !== 'function') {
    console.error('this file is a benchmark child process: run bench/run.js')
    process.exit(1)
  }
  let stopping = false
  async function exit (code) {
    if (stopping) return
    stopping = true
    const hard = setTimeout(() => process.exit(code), 3000)
    hard.unref()
    try {
      await stop()
    } finally {
      process.exit(code)
    }
  }
  process.on('disconnect', () => { exit(0) })
  process.on('message', (msg) => {
    if (msg.type === 'start') {
      start(msg.options).then(
        data => process.send({ type: 'ready', ...data }),
        err => {
          process.send({ type: 'failed', error: err.stack ?? String(err) })
          exit(1)
        })
    } else if (msg.type === 'ask') {
      Promise.resolve()
        .then(() => {
          const answer = answers[msg.what]
          if (answer === undefined) throw new Error(`nothing to answer "${msg.what}"`)
          return answer()
        })
        .then(
          data => process.send({ type: 'reply', id: msg.id, data }),
          err => process.send({ type: 'reply', id: msg.id, error: err.message }))
    } else if (msg.type === 'stop') {
      exit(0)
    }
  })
}
