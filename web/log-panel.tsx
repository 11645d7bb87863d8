import { useEffect, useRef, useState } from 'preact/hooks'
import type { Build } from './api.js'
import { ApiLink, ErrorNote } from './components.js'
import { bytes, isFinished } from './format.js'
import { LogView, type FollowState } from './log-view.js'

// The log section of a build's page: the view (log-view.ts) and its tools.

const FOLLOW_WORDS: Record<FollowState, string> = {
  loading: 'Loading the log…',
  following: 'Following the log',
  paused: 'Paused: scroll to the bottom to follow',
  ended: 'The log is complete'
}

export function LogPanel ({ build }: { build: Build }) {
  const box = useRef<HTMLDivElement>(null)
  const view = useRef<LogView>(undefined)
  const latest = useRef(build)
  latest.current = build
  const [state, setState] = useState<{ follow: FollowState, first: number, end: number }>({ follow: 'loading', first: 0, end: 0 })
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    const v = new LogView({ buildId: build.id, element: box.current!, onChange: setState, failedStep: () => latest.current.failedStep })
    view.current = v
    v.open(!isFinished(build)).catch(setError)
    return () => v.close()
  }, [build.id])
  useEffect(() => {
    if (build.state === 'failed' && state.follow === 'ended') view.current?.markFailedStep()
  }, [build.state, state.follow, state.end])
  const path = `/v1/builds/${encodeURIComponent(build.id)}/log`
  const bottom = () => { box.current!.scrollTop = box.current!.scrollHeight }
  return (
    <section aria-labelledby="log">
      <h2 id="log">Log</h2>
      <div class="log-tools">
        <span role="status" class="follow" data-follow={state.follow}>{FOLLOW_WORDS[state.follow]}</span>
        {state.first > 0 && <button type="button" onClick={() => { view.current?.loadEarlier().catch(setError) }}>Load earlier ({bytes(state.first)} before)</button>}
        {state.follow === 'paused' && <button type="button" onClick={bottom}>Jump to the end</button>}
        <ApiLink path={path}>Raw</ApiLink>
        <ApiLink path={path} filename={`${build.id}.log`}>Download</ApiLink>
      </div>
      {error !== undefined && <ErrorNote error={error} />}
      <div class="log" ref={box} role="log" aria-label="build log" tabIndex={0} />
    </section>
  )
}
