import { publicBuild, type BuildEvent, type EventDraft } from '../builds/build-event.js'
import type { Build } from '../builds/model.js'
import type { EventQuery, EventRepository } from './repositories.js'
import type { Row, SqlClient, SqlDialect, SqlRunner } from './sql-client.js'

const toEvent = (row: Row): BuildEvent =>
  ({ seq: row.seq, type: row.type, buildId: row.build_id, stream: row.stream, time: row.time, build: JSON.parse(row.build) })

/** The build as it is now, as an outbox event: written in the caller's transaction, after its change. */
export async function appendEvent (tx: SqlRunner, dialect: SqlDialect, build: Build, draft: EventDraft): Promise<BuildEvent> {
  if (dialect.lockOutbox) await tx.run(dialect.lockOutbox)
  const data = publicBuild(build)
  const row = await tx.get('INSERT INTO events (type, build_id, stream, time, build) VALUES (?, ?, ?, ?, ?) RETURNING seq',
    [draft.type, build.id, build.stream, draft.time, JSON.stringify(data)])
  return { seq: row!.seq, type: draft.type, buildId: build.id, stream: build.stream, time: draft.time, build: data }
}

export class SqlEventRepository implements EventRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async latestEventSeq () {
    const row = await this.#sql.get(this.#sql.dialect.latestEventSeq)
    return (row?.seq as number | undefined) ?? 0
  }

  async eventsAfter (seq: number, query: EventQuery) {
    const where = ['seq > ?']
    const args: unknown[] = [seq]
    if (query.stream !== undefined) { where.push('stream = ?'); args.push(query.stream) }
    if (query.build !== undefined) { where.push('build_id = ?'); args.push(query.build) }
    const rows = await this.#sql.all(`SELECT seq, type, build_id, stream, time, build FROM events WHERE ${where.join(' AND ')}
                                      ORDER BY seq LIMIT ?`, [...args, query.limit])
    return rows.map(toEvent)
  }

  async pruneEvents (before: string) {
    return this.#sql.run('DELETE FROM events WHERE time < ?', [before])
  }
}
