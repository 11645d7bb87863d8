// The baseline: a bare fastify hello-world, started as plain node (no
// loader), on $PORT. /healthz tells the bench it is up.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/hello', async () => ({ hello: 'world' }))
app.get('/healthz', async () => ({ status: 'ok' }))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
