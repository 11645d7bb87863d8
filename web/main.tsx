import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { access, type Access } from './api.js'
import { BuildPage } from './build-page.js'
import { BuildsPage } from './builds-page.js'
import { Layout } from './components.js'
import { StreamsPage } from './streams-page.js'
import { TokenPage } from './token-page.js'

// The dashboard's entry: one page per path (the server serves the same shell
// for each), after finding out what the caller's token may do.

function Page ({ path, caller }: { path: string, caller: Access | undefined }) {
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent)
  if (segments[0] === 'token') return <TokenPage />
  if (segments[0] === 'builds' && segments[1] !== undefined) return <BuildPage id={segments[1]} access={caller} />
  if (segments[0] === 'builds') return <BuildsPage />
  if (segments[0] === 'streams' && segments[1] !== undefined) return <BuildsPage stream={segments[1]} />
  return <StreamsPage />
}

function App () {
  const [caller, setCaller] = useState<Access>()
  const path = location.pathname
  useEffect(() => { access().then(setCaller, () => setCaller('read')) }, [])
  if (caller === 'token-needed' && path !== '/token') {
    return (
      <Layout title="A token is needed">
        <p>This server wants an API token. <a href={`/token?next=${encodeURIComponent(path + location.search)}`}>Paste one</a> to see its builds.</p>
      </Layout>
    )
  }
  if (caller === undefined && path !== '/token') return <p>Loading…</p>
  return <Page path={path} caller={caller} />
}

render(<App />, document.getElementById('app')!)
