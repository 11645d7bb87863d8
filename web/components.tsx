import type { ComponentChildren } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { openWithToken, token, type Build } from './api.js'
import { ago, stateWord } from './format.js'
import type { LiveStatus } from './live-source.js'

// Pieces every page uses: the frame, state badges, times.

/** The current time, re-read every second so that "2m ago" and "running for" move. */
export function useNow (): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [])
  return now
}

/** State as a word and a colour: the word alone must say it. */
export function StateBadge ({ build }: { build: Build }) {
  return <span class={`badge state-${build.state}`} data-state={build.state}>{stateWord(build.state)}</span>
}

export function Time ({ iso, now }: { iso: string | undefined, now: number }) {
  if (iso === undefined) return <span class="muted">—</span>
  return <time dateTime={iso} title={new Date(iso).toLocaleString()}>{ago(iso, now)}</time>
}

const LIVE_WORDS: Record<LiveStatus, string> = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…' }

export function Layout ({ title, live, children }: { title: string, live?: LiveStatus, children: ComponentChildren }) {
  useEffect(() => { document.title = `${title} · cosa-buildd` }, [title])
  return (
    <>
      <header class="top">
        <nav aria-label="main">
          <a href="/" class="brand">cosa-buildd</a>
          <a href="/">Streams</a>
          <a href="/builds">Builds</a>
          <a href="/token">Token</a>
          <a href="/docs">API</a>
        </nav>
        {live !== undefined && <span class={`live live-${live}`} role="status" aria-live="polite">{LIVE_WORDS[live]}</span>}
      </header>
      <main>
        <h1>{title}</h1>
        {children}
      </main>
    </>
  )
}

export function ErrorNote ({ error }: { error: unknown }) {
  const message = error instanceof Error ? error.message : String(error)
  return <p class="error" role="alert">{message}</p>
}

export function BuildLink ({ build }: { build: Build }) {
  return <a href={`/builds/${encodeURIComponent(build.id)}`}>{build.result?.cosaBuildId ?? build.request.version ?? build.id}</a>
}

/** A link to a file of the API that works with a token too. */
export function ApiLink ({ path, filename, children }: { path: string, filename?: string, children: string }) {
  const onClick = (e: MouseEvent) => {
    if (token.get() === undefined) return
    e.preventDefault()
    void openWithToken(path, filename)
  }
  return <a href={path} download={filename} onClick={onClick}>{children}</a>
}
