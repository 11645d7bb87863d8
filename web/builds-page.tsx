import { useEffect, useRef, useState } from 'preact/hooks'
import { getJson, type Build, type BuildList } from './api.js'
import { BuildLink, ErrorNote, Layout, StateBadge, Time, useNow } from './components.js'
import { duration, runTime, waitingText, waitTime } from './format.js'
import { merge } from './build-list.js'
import { subscribe, type LiveStatus } from './live-source.js'

// `/builds` and `/streams/{s}`: newest first, older pages by the API's
// keyset cursor, and live: a build appears and moves without a reload.

/** Rows per page: `?limit=` (1-500, the API's bounds), else 25. */
function pageSize () {
  const asked = Number(new URLSearchParams(location.search).get('limit'))
  return Number.isInteger(asked) && asked >= 1 && asked <= 500 ? asked : 25
}


function Row ({ build, now, showStream }: { build: Build, now: number, showStream: boolean }) {
  const run = runTime(build, now)
  const detail = build.state === 'running' ? build.phase : build.state === 'failed' ? build.failedStep ?? build.reason : waitingText(build)
  return (
    <tr data-build={build.id} data-state={build.state}>
      <td data-label="State"><StateBadge build={build} /></td>
      <td data-label="Build"><BuildLink build={build} /></td>
      {showStream && <td data-label="Stream"><a href={`/streams/${encodeURIComponent(build.stream)}`}>{build.stream}</a></td>}
      <td data-label="Detail">{detail ?? ''}</td>
      <td data-label="Created"><Time iso={build.createdAt} now={now} /></td>
      <td data-label="Waited">{duration(waitTime(build, now))}</td>
      <td data-label="Ran">{run === undefined ? '—' : duration(run)}</td>
    </tr>
  )
}

export function BuildsPage ({ stream }: { stream?: string }) {
  const now = useNow()
  const [builds, setBuilds] = useState<Build[]>()
  const [cursor, setCursor] = useState<string>()
  // Read by the event handler, which outlives renders.
  const morePages = useRef(false)
  morePages.current = cursor !== undefined
  const [error, setError] = useState<unknown>()
  const [live, setLive] = useState<LiveStatus>('connecting')
  const base = `/v1/builds?limit=${pageSize()}` + (stream === undefined ? '' : `&stream=${encodeURIComponent(stream)}`)

  useEffect(() => {
    getJson<BuildList>(base).then((page) => { setBuilds(page.builds); setCursor(page.nextCursor) }, setError)
    const sub = subscribe(stream === undefined ? { queue: true } : { stream, queue: true },
      (build) => setBuilds((list) => list === undefined ? list : merge(list, build, morePages.current)), setLive)
    return () => sub.close()
  }, [base])

  const older = () => {
    if (cursor === undefined) return
    getJson<BuildList>(`${base}&cursor=${encodeURIComponent(cursor)}`).then((page) => {
      setBuilds((list) => [...(list ?? []), ...page.builds.filter((b) => !list?.some((o) => o.id === b.id))])
      setCursor(page.nextCursor)
    }, setError)
  }

  return (
    <Layout title={stream === undefined ? 'Builds' : `Stream ${stream}`} live={live}>
      {error !== undefined && <ErrorNote error={error} />}
      {builds === undefined
        ? <p>Loading…</p>
        : builds.length === 0
          ? <p>No builds yet.</p>
          : (
            <table class="builds">
              <thead>
                <tr>
                  <th scope="col">State</th><th scope="col">Build</th>{stream === undefined && <th scope="col">Stream</th>}
                  <th scope="col">Phase / reason / queue</th><th scope="col">Created</th><th scope="col">Waited</th><th scope="col">Ran</th>
                </tr>
              </thead>
              <tbody>{builds.map((b) => <Row key={b.id} build={b} now={now} showStream={stream === undefined} />)}</tbody>
            </table>
            )}
      {cursor !== undefined && <button type="button" onClick={older}>Older builds</button>}
    </Layout>
  )
}
