import { Fragment, type ComponentChildren } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { getJson, postJson, request, type Access, type Build } from './api.js'
import { ApiLink, ErrorNote, Layout, StateBadge, Time, useNow } from './components.js'
import { archText, attemptText, bytes, duration, headline, isFinished, waitingText } from './format.js'
import { subscribe, type BuildEvent, type LiveStatus } from './live-source.js'
import { LogPanel } from './log-panel.js'
import { timeline } from './timeline.js'

// `/builds/{id}`: what a build is, what it made, and its log.

function Copy ({ text, label }: { text: string, label: string }) {
  const [done, setDone] = useState(false)
  // The clipboard API exists only in secure contexts (https, localhost); elsewhere the browser's prompt offers the text to copy.
  const fallback = () => { window.prompt(label, text) }
  const copy = () => {
    if (navigator.clipboard === undefined) return fallback()
    navigator.clipboard.writeText(text).then(() => setDone(true), fallback)
  }
  return <button type="button" class="small" onClick={copy} aria-label={label}>{done ? 'Copied' : 'Copy'}</button>
}

function Facts ({ build, now }: { build: Build, now: number }) {
  const rows: Array<[string, ComponentChildren]> = [
    ['Stream', <a href={`/streams/${encodeURIComponent(build.stream)}`}>{build.stream}</a>],
    ['Build', <code>{build.id}</code>],
    ['cosa build id', build.result?.cosaBuildId ?? build.request.version],
    ['Config commit', build.configCommit !== undefined && <code>{build.configCommit}</code>],
    ['OSTree commit', build.result !== undefined && <code>{build.result.ostreeCommit}</code>],
    ['Phase', build.phase],
    ['Failed step', build.failedStep !== undefined && <strong>{build.failedStep}</strong>],
    ['Reason', build.reason !== undefined && `${build.reason}${build.exitCode === undefined ? '' : ` (exit code ${build.exitCode})`}`],
    ['Message', build.message],
    ['Queue', waitingText(build)],
    ['Created', <Time iso={build.createdAt} now={now} />],
    ['Started', build.startedAt !== undefined && <Time iso={build.startedAt} now={now} />],
    ['Finished', build.finishedAt !== undefined && <Time iso={build.finishedAt} now={now} />],
    ['Cancel requested', build.cancelRequestedAt !== undefined && <Time iso={build.cancelRequestedAt} now={now} />],
    ['Pinned', build.pinned === undefined ? undefined : build.pinned ? 'yes' : 'no']
  ]
  return (
    <dl class="facts">
      {rows.filter(([, v]) => v !== undefined && v !== false && v !== '').map(([k, v]) => <Fragment key={k}><dt>{k}</dt><dd>{v}</dd></Fragment>)}
    </dl>
  )
}

/** The phases, from the build's events; the running one counts up, a failed one is marked in words. */
function Timeline ({ events, now }: { events: BuildEvent[], now: number }) {
  const steps = timeline(events)
  if (steps.length === 0) return null
  return (
    <section aria-labelledby="phases">
      <h2 id="phases">Phases</h2>
      <ol class="timeline">
        {steps.map((s) => (
          <li key={s.start + s.phase} data-phase={s.phase} class={s.failed ? 'failed' : s.end === undefined ? 'running' : ''}>
            <code>{s.phase}</code>{' '}
            <time dateTime={s.start} title={new Date(s.start).toLocaleString()}>{new Date(s.start).toLocaleTimeString()}</time>{' '}
            <span class="muted">{duration((s.end === undefined ? now : Date.parse(s.end)) - Date.parse(s.start))}</span>
            {s.failed && <strong> ← failed here</strong>}
            {s.end === undefined && <span class="muted"> (running)</span>}
          </li>
        ))}
      </ol>
    </section>
  )
}

function Artifacts ({ build }: { build: Build }) {
  const artifacts = build.result?.artifacts ?? []
  if (artifacts.length === 0) return null
  return (
    <section aria-labelledby="artifacts">
      <h2 id="artifacts">Artifacts</h2>
      <table class="artifacts">
        <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">sha256</th><th scope="col">Download</th></tr></thead>
        <tbody>
          {artifacts.map((a) => (
            <tr key={a.name} data-artifact={a.name}>
              <th scope="row">{a.name}</th>
              <td data-label="Size" title={`${a.size} bytes`}>{bytes(a.size)}</td>
              <td data-label="sha256" class="sha"><code>{a.sha256}</code> <Copy text={a.sha256} label={`Copy the sha256 of ${a.name}`} /></td>
              <td data-label="Download">
                {a.url === undefined ? '—' : <ApiLink path={a.url} filename={a.path.split('/').pop()}>{a.path.split('/').pop() ?? a.name}</ApiLink>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}

/** A multi-arch build's arches, the primary first; another arch's files are in cosa's layout. */
function Arches ({ build, now }: { build: Build, now: number }) {
  if (build.arches === undefined) return null
  return (
    <section aria-labelledby="arches">
      <h2 id="arches">Arches</h2>
      <ul class="arches">
        {build.arches.map((run, i) => (
          <li key={run.arch} data-arch={run.arch} class={run.state}>
            <code>{run.arch}</code>{i === 0 ? ' (primary) ' : ' '}{archText(run, now)}
            {i > 0 && (run.result?.artifacts ?? []).map((a) => (
              <span key={a.name}> · {a.url === undefined ? a.name : <ApiLink path={a.url} filename={a.path.split('/').pop()}>{a.name}</ApiLink>}</span>
            ))}
          </li>
        ))}
      </ul>
    </section>
  )
}

/** A retried build's attempts that ended (the one running now is the build itself). */
function Attempts ({ build }: { build: Build }) {
  const attempts = build.attempts ?? []
  // One attempt that ended is the build's own end: nothing to list.
  if (attempts.length === 0 || (attempts.length === 1 && isFinished(build))) return null
  return (
    <section aria-labelledby="attempts">
      <h2 id="attempts">Attempts</h2>
      <ol class="attempts">
        {attempts.map((a) => <li key={a.endedAt}>{attemptText(a)}</li>)}
      </ol>
    </section>
  )
}

function Meta ({ build }: { build: Build }) {
  const [meta, setMeta] = useState<string>()
  if (build.result === undefined) return null
  const load = (e: Event) => {
    if ((e.currentTarget as HTMLDetailsElement).open && meta === undefined) {
      getJson<unknown>(`/v1/builds/${encodeURIComponent(build.id)}/meta.json`)
        .then((m) => setMeta(JSON.stringify(m, null, 2)), (err: Error) => setMeta(err.message))
    }
  }
  return (
    <details class="meta" onToggle={load}>
      <summary>meta.json</summary>
      <pre>{meta ?? 'Loading…'}</pre>
    </details>
  )
}

function Actions ({ build, access, onBuild }: { build: Build, access: Access | undefined, onBuild: (b: Build) => void }) {
  const [error, setError] = useState<unknown>()
  if (access !== 'submit') return null
  const id = encodeURIComponent(build.id)
  const cancel = () => postJson<Build>(`/v1/builds/${id}/cancel`).then(onBuild, setError)
  const pin = (pinned: boolean) => request(`/v1/builds/${id}/pin`, { method: pinned ? 'PUT' : 'DELETE' })
    .then(() => getJson<Build>(`/v1/builds/${id}`)).then(onBuild, setError)
  return (
    <div class="actions">
      {!isFinished(build) && <button type="button" onClick={cancel} disabled={build.cancelRequestedAt !== undefined}>Cancel build</button>}
      {build.result !== undefined && <button type="button" onClick={() => { void pin(build.pinned !== true) }}>{build.pinned === true ? 'Unpin' : 'Pin'}</button>}
      {error !== undefined && <ErrorNote error={error} />}
    </div>
  )
}

/**
 * Whether `next` is history the replay from seq 0 brings (for the timeline)
 * that is older than the build shown: a finished build never runs again, and
 * a running one goes back to the queue only by `build.requeued`.
 */
function isReplay (shown: Build | undefined, next: Build, event: BuildEvent | undefined) {
  if (shown === undefined) return false
  if (isFinished(shown)) return !isFinished(next)
  return shown.state === 'running' && next.state === 'queued' && event?.type === 'build.queued'
}

export function BuildPage ({ id, access }: { id: string, access: Access | undefined }) {
  const now = useNow()
  const [build, setBuild] = useState<Build>()
  const [error, setError] = useState<unknown>()
  const [live, setLive] = useState<LiveStatus>('connecting')
  const [events, setEvents] = useState<BuildEvent[]>([])
  useEffect(() => {
    setEvents([])
    getJson<Build>(`/v1/builds/${encodeURIComponent(id)}`).then(setBuild, setError)
    // From seq 0: the build's whole history first (its timeline), then its changes as they come.
    const sub = subscribe({ build: id, since: 0 }, (b, event) => {
      setBuild((shown) => isReplay(shown, b, event) ? shown : b)
      if (event !== undefined) setEvents((all) => [...all, event])
    }, setLive)
    return () => sub.close()
  }, [id])
  if (build === undefined) return <Layout title={`Build ${id}`}>{error === undefined ? <p>Loading…</p> : <ErrorNote error={error} />}</Layout>
  return (
    <Layout title={headline(build, now)} live={isFinished(build) ? undefined : live}>
      <p class="subtitle"><StateBadge build={build} /> build <code>{build.id}</code> of <a href={`/streams/${encodeURIComponent(build.stream)}`}>{build.stream}</a></p>
      {build.state === 'failed' && (
        <p class="failure" role="alert">
          Failed{build.failedStep !== undefined ? ` in step ${build.failedStep}` : ''}: {build.reason ?? 'unknown reason'}{build.message !== undefined ? ` — ${build.message}` : ''}
        </p>
      )}
      <Actions build={build} access={access} onBuild={setBuild} />
      <Facts build={build} now={now} />
      <Timeline events={events} now={now} />
      <Attempts build={build} />
      <Arches build={build} now={now} />
      <Artifacts build={build} />
      <Meta build={build} />
      <LogPanel build={build} />
    </Layout>
  )
}
