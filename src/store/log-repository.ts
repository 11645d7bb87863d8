import type { LogAppend, LogChunk, LogCheckpoint, LogRepository } from './repositories.js'
import type { SqlClient, SqlRunner } from './sql-client.js'

export class SqlLogRepository implements LogRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async size (buildId: string) {
    const row = await this.#sql.get(`SELECT byte_offset + LENGTH(data) AS size FROM build_log_chunks
                                     WHERE build_id = ? ORDER BY byte_offset DESC LIMIT 1`, [buildId])
    return row ? row.size as number : 0
  }

  async checkpoint (buildId: string): Promise<LogCheckpoint | undefined> {
    const row = await this.#sql.get('SELECT bytes, marks FROM build_log_checkpoints WHERE build_id = ?', [buildId])
    return row && { bytes: row.bytes as number, marks: JSON.parse(row.marks as string) }
  }

  async cutTo (buildId: string, bytes: number) {
    await this.#sql.run('DELETE FROM build_log_chunks WHERE build_id = ? AND byte_offset >= ?', [buildId, bytes])
  }

  append (buildId: string, change: LogAppend) {
    return this.#sql.transaction(async (tx) => {
      if (change.cutTo !== undefined) {
        await tx.run('DELETE FROM build_log_chunks WHERE build_id = ? AND byte_offset >= ?', [buildId, change.cutTo])
      }
      for (const chunk of change.chunks) {
        await tx.run('INSERT INTO build_log_chunks (build_id, byte_offset, data) VALUES (?, ?, ?)', [buildId, chunk.offset, chunk.data])
      }
      if (change.checkpoint) await saveCheckpoint(tx, buildId, change.checkpoint)
    })
  }

  async chunkAt (buildId: string, position: number): Promise<LogChunk | undefined> {
    // Chunks are contiguous: the one holding `position` is the last to start at or before it.
    const row = await this.#sql.get(`SELECT byte_offset, data FROM build_log_chunks
                                     WHERE build_id = ? AND byte_offset <= ? ORDER BY byte_offset DESC LIMIT 1`, [buildId, position])
    return row && { offset: row.byte_offset as number, data: row.data as Buffer }
  }

  async putAttachment (buildId: string, name: string, data: Buffer) {
    await this.#sql.run(`INSERT INTO build_log_attachments (build_id, name, data) VALUES (?, ?, ?)
                         ON CONFLICT (build_id, name) DO UPDATE SET data = excluded.data`, [buildId, name, data])
  }

  async getAttachment (buildId: string, name: string) {
    const row = await this.#sql.get('SELECT data FROM build_log_attachments WHERE build_id = ? AND name = ?', [buildId, name])
    return row ? row.data as Buffer : undefined
  }

  remove (buildId: string) {
    return this.#sql.transaction(async (tx) => {
      for (const table of ['build_log_chunks', 'build_log_checkpoints', 'build_log_attachments']) {
        await tx.run(`DELETE FROM ${table} WHERE build_id = ?`, [buildId])
      }
    })
  }
}

function saveCheckpoint (tx: SqlRunner, buildId: string, checkpoint: LogCheckpoint) {
  return tx.run(`INSERT INTO build_log_checkpoints (build_id, bytes, marks) VALUES (?, ?, ?)
                 ON CONFLICT (build_id) DO UPDATE SET bytes = excluded.bytes, marks = excluded.marks`,
  [buildId, checkpoint.bytes, JSON.stringify(checkpoint.marks)])
}
