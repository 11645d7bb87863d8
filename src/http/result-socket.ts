import { chmod, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { createServer, type Server } from 'node:http'
import type { FastifyInstance } from 'fastify'

// Build containers reach the API through a Unix socket in the data
// directory (its directory is bind-mounted into them), so results arrive
// even with no container network. It serves the result route alone.
//
// Replicas on one host may share a data directory (docs/scale-out.md): then
// one of them serves the socket, and any replica will do, because a result
// is written to the shared database. A replica leaves a socket that answers
// alone, and takes over one that does not (its server died); `take` is
// called again periodically for that.

const RESULT_ROUTE = /^\/v1\/builds\/[^/?]+\/result(\?|$)/

/** Whether something accepts connections on the socket. */
const answers = (path: string) => new Promise<boolean>((resolve) => {
  const socket = connect(path)
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
})

export class ResultSocket {
  readonly #app: FastifyInstance
  readonly #path: string
  #server: Server | undefined

  constructor (app: FastifyInstance, path: string) {
    this.#app = app
    this.#path = path
  }

  /** Serves the socket unless this process or another already does. */
  async take () {
    if (this.#server?.listening || await answers(this.#path)) return
    await rm(this.#path, { force: true })
    const server = createServer((req, res) => {
      if (req.method === 'POST' && RESULT_ROUTE.test(req.url ?? '')) return this.#app.routing(req, res)
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'BLD_ROUTE_NOT_FOUND', message: 'this socket serves only POST /v1/builds/{id}/result' }))
    })
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.#path, resolve))
    this.#server = server
    // Whatever uid the image runs as must be able to connect; the per-build
    // token, not the file mode, is what authorizes a result.
    await chmod(this.#path, 0o666)
  }

  async close () {
    const server = this.#server
    if (server) await new Promise((resolve) => server.close(resolve))
  }
}
