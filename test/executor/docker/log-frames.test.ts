import t from 'tap'
import { LogFrameParser } from '../../../src/executor/docker/log-frames.js'

// The engine's multiplexed log answer, cut into chunks anywhere.

const frame = (stream: number, payload: string) => {
  const body = Buffer.from(payload)
  const header = Buffer.alloc(8)
  header[0] = stream
  header.writeUInt32BE(body.length, 4)
  return Buffer.concat([header, body])
}

t.test('frames are whole however the answer is cut', async (t) => {
  const answer = Buffer.concat([
    frame(1, '2026-01-01T00:00:01.000000001Z hello\n'),
    frame(2, '2026-01-01T00:00:01.000000002Z oops\n'),
    frame(1, '2026-01-01T00:00:01.000000003Z a piece'),
    frame(1, 'garbage')
  ])
  for (const size of [1, 3, 8, 9, 40, answer.length]) {
    const parser = new LogFrameParser()
    const got: string[] = []
    for (let i = 0; i < answer.length; i += size) {
      for (const f of parser.push(answer.subarray(i, i + size))) got.push(`${f.stream} ${f.ts} ${f.data.toString()}`)
    }
    t.same(got, [
      'stdout 2026-01-01T00:00:01.000000001Z hello\n',
      'stderr 2026-01-01T00:00:01.000000002Z oops\n',
      'stdout 2026-01-01T00:00:01.000000003Z a piece'
    ], `chunks of ${size} bytes`)
    t.equal(parser.pending, 0, 'nothing left over')
  }
})

t.test('a frame cut at the end of the answer is left pending', async (t) => {
  const parser = new LogFrameParser()
  const f = frame(1, '2026-01-01T00:00:01.000000001Z hello\n')
  t.same([...parser.push(f.subarray(0, 20))], [])
  t.equal(parser.pending, 20)
})
