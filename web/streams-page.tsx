import { useEffect, useRef, useState } from 'preact/hooks'
import { getJson, poll, type Build, type BuildList, type Stream } from './api.js'
import { BuildLink, ErrorNote, Layout, StateBadge, Time, useNow } from './components.js'
import { duration, runTime, waitingText } from './format.js'
import { subscribe, type LiveStatus } from './live-source.js'

// `/`: every stream with its latest build, the one before, and its queue.

interface Summary { latest?: Build, previous?: Build, queued: number, running?: Build }

const QUEUED_LIMIT = 500

async function summarize (stream: string): Promise<Summary> {
  const name = encodeURIComponent(stream)
  const [recent, queued] = await Promise.all([
    poll<BuildList>(`/v1/builds?stream=${name}&limit=20`),
    poll<BuildList>(`/v1/builds?stream=${name}&state=queued&limit=${QUEUED_LIMIT}`)
  ])
  const started = recent.body.builds.filter((b) => b.state !== 'queued')
  return { latest: started[0], previous: started[1], queued: queued.body.builds.length }
}

function BuildCell ({ build, now }: { build: Build | undefined, now: number }) {
  if (build === undefined) return <span class="muted">none</span>
  const run = runTime(build, now)
  return (
    <span class="cell">
      <StateBadge build={build} /> <BuildLink build={build} />{' '}
      <Time iso={build.finishedAt ?? build.startedAt ?? build.createdAt} now={now} />
      {run !== undefined && <span class="muted"> · {duration(run)}</span>}
      {build.phase !== undefined && build.state === 'running' && <span class="muted"> · {build.phase}</span>}
      {waitingText(build) !== undefined && <span class="muted"> · {waitingText(build)}</span>}
    </span>
  )
}

function StreamRow ({ name, summary, now }: { name: string, summary: Summary | undefined, now: number }) {
  const failed = summary?.latest?.state === 'failed'
  return (
    <tr class={failed ? 'failed-last' : ''} data-stream={name}>
      <th scope="row"><a href={`/streams/${encodeURIComponent(name)}`}>{name}</a>{failed && <span class="warn"> (last build failed)</span>}</th>
      <td data-label="Latest">{summary === undefined ? '…' : <BuildCell build={summary.latest} now={now} />}</td>
      <td data-label="Before">{summary === undefined ? '…' : <BuildCell build={summary.previous} now={now} />}</td>
      <td data-label="Queued" class="queued-count">{summary === undefined ? '…' : summary.queued >= QUEUED_LIMIT ? `${QUEUED_LIMIT}+` : summary.queued}</td>
    </tr>
  )
}

export function StreamsPage () {
  const now = useNow()
  const [streams, setStreams] = useState<Stream[]>()
  const [summaries, setSummaries] = useState<Record<string, Summary>>({})
  const [filter, setFilter] = useState(new URLSearchParams(location.search).get('q') ?? '')
  const [error, setError] = useState<unknown>()
  const [live, setLive] = useState<LiveStatus>('connecting')

  const refresh = (name: string) => summarize(name).then((s) => setSummaries((all) => ({ ...all, [name]: s })), setError)
  // Events come in bursts (a connect's refresh reports every recent build): one refresh per stream and burst.
  const pending = useRef(new Set<string>())
  const refreshSoon = (name: string) => {
    if (pending.current.has(name)) return
    pending.current.add(name)
    setTimeout(() => { pending.current.delete(name); void refresh(name) }, 200)
  }

  useEffect(() => {
    getJson<{ streams: Stream[] }>('/v1/streams').then((list) => {
      setStreams(list.streams)
      for (const s of list.streams) void refresh(s.name)
    }, setError)
    const sub = subscribe({}, (build) => refreshSoon(build.stream), setLive)
    return () => sub.close()
  }, [])

  const onFilter = (value: string) => {
    setFilter(value)
    const url = new URL(location.href)
    if (value) url.searchParams.set('q', value); else url.searchParams.delete('q')
    history.replaceState(null, '', url)
  }
  const shown = (streams ?? []).filter((s) => s.name.includes(filter.trim()))
  return (
    <Layout title="Streams" live={live}>
      {error !== undefined && <ErrorNote error={error} />}
      <label class="filter">Filter by name <input type="search" value={filter} onInput={(e) => onFilter(e.currentTarget.value)} /></label>
      {streams === undefined
        ? <p>Loading…</p>
        : shown.length === 0
          ? <p>{streams.length === 0 ? 'No streams are registered yet (PUT /v1/streams/{name}).' : 'No stream matches.'}</p>
          : (
            <table class="streams">
              <thead><tr><th scope="col">Stream</th><th scope="col">Latest build</th><th scope="col">Before it</th><th scope="col">Queued</th></tr></thead>
              <tbody>
                {shown.map((s) => <StreamRow key={s.name} name={s.name} summary={summaries[s.name]} now={now} />)}
              </tbody>
            </table>
            )}
    </Layout>
  )
}
