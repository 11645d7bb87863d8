import t from 'tap'
import { Histogram, Registry } from 'prom-client'
import { AnswerHistogram } from '../../src/metrics/answer-histogram.js'

// The hand-kept histogram must expose exactly what prom-client's Histogram
// exposes for the same observations.

const BUCKETS = [0.001, 0.01, 0.1, 1]
const observations: Array<[string, string, number, number]> = [
  ['GET', '/v1/builds/:id', 200, 0.0004],
  ['GET', '/v1/builds/:id', 304, 0.001],
  ['GET', '/v1/builds/:id', 200, 0.05],
  ['HEAD', '/v1/builds/:id', 200, 2.5],
  ['POST', '/v1/streams/:stream/builds', 202, 0.02],
  ['GET', '/v1/builds/:id', 200, 0.5]
]

t.test('exposes the same text as prom-client', async (t) => {
  const theirs = new Registry()
  const histogram = new Histogram({ name: 'h', help: 'answers', labelNames: ['method', 'route', 'status'], buckets: BUCKETS, registers: [theirs] })
  const ours = new Registry()
  const answers = new AnswerHistogram('h', 'answers', BUCKETS, ours)
  const routes = new Map<string, ReturnType<AnswerHistogram['route']>>()
  for (const [method, route, status, seconds] of observations) {
    histogram.observe({ method, route, status: String(status) }, seconds)
    if (!routes.has(route)) routes.set(route, answers.route(route))
    routes.get(route)!(method, status, seconds)
  }
  const sorted = (text: string) => text.split('\n').sort()
  t.same(sorted(await ours.metrics()), sorted(await theirs.metrics()))
  t.match(await ours.metrics(), /h_bucket\{le="0\.1",method="GET",route="\/v1\/builds\/:id",status="200"\} 2/)
})

t.test('reset forgets every series, and observing starts them again', async (t) => {
  const registry = new Registry()
  const answers = new AnswerHistogram('h', 'answers', BUCKETS, registry)
  const observe = answers.route('/x')
  observe('GET', 200, 0.002)
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), /h_count/)
  observe('GET', 200, 0.002)
  t.match(await registry.metrics(), /h_count\{method="GET",route="\/x",status="200"\} 1/)
})
