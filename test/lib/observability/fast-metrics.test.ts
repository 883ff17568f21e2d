import t from 'tap'
import { Registry } from 'prom-client'
import { FastCounter, FastHistogram } from '../../../lib/observability/fast-metrics.js'

function registryWith (...metrics: Array<FastCounter | FastHistogram>): Registry {
  const register = new Registry()
  for (const metric of metrics) register.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0])
  return register
}

t.test('a counter counts per combination of label values, in the Prometheus text format', async t => {
  const requests = new FastCounter('requests_total', 'Requests by method and outcome', ['method', 'outcome'])
  const plain = new FastCounter('plain_total', 'No labels')
  const lookups = new FastCounter('lookups_total', 'One label', ['result'])
  lookups.inc('hit')
  lookups.inc('hit')
  lookups.inc('miss')
  for (let i = 0; i < 3; i++) requests.inc('tools/call', 'ok')
  requests.inc('tools/call', 'error')
  requests.inc('ping', 'ok')
  plain.inc()
  plain.inc()
  const text = await registryWith(requests, plain, lookups).metrics()
  t.match(text, 'lookups_total{result="hit"} 2\nlookups_total{result="miss"} 1\n')
  t.match(text, '# HELP requests_total Requests by method and outcome\n# TYPE requests_total counter\n')
  t.match(text, 'requests_total{method="tools/call",outcome="ok"} 3\n')
  t.match(text, 'requests_total{method="tools/call",outcome="error"} 1\n')
  t.match(text, 'requests_total{method="ping",outcome="ok"} 1\n')
  t.match(text, 'plain_total 2\n')
  requests.reset()
  t.notMatch(await registryWith(requests).metrics(), /requests_total\{/, 'reset forgets every series')
})

t.test('a histogram keeps cumulative buckets, +Inf, sum and count per series; three labels at most', async t => {
  const duration = new FastHistogram('duration_seconds', 'Durations', [0.01, 0.1, 1], ['method', 'route', 'status_code'])
  for (const value of [0.005, 0.01, 0.05, 0.5, 2]) duration.observe(value, 'POST', '/mcp', 200)
  duration.observe(0.2, 'GET', '/mcp', 404)
  const text = await registryWith(duration).metrics()
  const line = (le: string): string => `duration_seconds_bucket{le="${le}",method="POST",route="/mcp",status_code="200"}`
  t.match(text, `${line('0.01')} 2\n`, 'a value on a bound counts in that bucket')
  t.match(text, `${line('0.1')} 3\n`)
  t.match(text, `${line('1')} 4\n`)
  t.match(text, `${line('+Inf')} 5\n`)
  t.match(text, 'duration_seconds_sum{method="POST",route="/mcp",status_code="200"} 2.565\n')
  t.match(text, 'duration_seconds_count{method="POST",route="/mcp",status_code="200"} 5\n')
  t.match(text, 'duration_seconds_count{method="GET",route="/mcp",status_code="404"} 1\n')

  const unlabelled = new FastHistogram('plain_seconds', 'No labels', [1])
  unlabelled.observe(0.5)
  unlabelled.observe(3)
  const plain = await registryWith(unlabelled).metrics()
  t.match(plain, 'plain_seconds_bucket{le="1"} 1\nplain_seconds_bucket{le="+Inf"} 2\nplain_seconds_sum 3.5\nplain_seconds_count 2\n')
  unlabelled.reset()
  t.notMatch(await registryWith(unlabelled).metrics(), /plain_seconds_count/)
  t.throws(() => new FastCounter('four_total', 'Too many', ['a', 'b', 'c', 'd']), { message: 'fast-metrics: at most three labels' })
})
