import { useState } from 'preact/hooks'
import { token } from './api.js'
import { Layout } from './components.js'

// `/token`: the caller's API token, for this browser tab only.

export function TokenPage () {
  const [value, setValue] = useState('')
  const [saved, setSaved] = useState(token.get() !== undefined)
  const save = (e: Event) => {
    e.preventDefault()
    if (value.trim() === '') return
    token.set(value.trim())
    setSaved(true)
    setValue('')
    const back = new URLSearchParams(location.search).get('next')
    if (back?.startsWith('/') === true && !back.startsWith('//')) location.assign(back)
  }
  return (
    <Layout title="API token">
      <p>
        The dashboard reads the API with a token of the server (read, submit or admin). It is kept in this
        tab&apos;s session storage only, and sent to this server alone. A read token shows builds; submit and
        admin tokens can also cancel and pin them.
      </p>
      <p role="status">{saved ? 'A token is set for this tab.' : 'No token is set.'}</p>
      <form onSubmit={save} class="token-form">
        <label>Token <input type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} required /></label>
        <button type="submit">Use this token</button>
        {saved && <button type="button" onClick={() => { token.clear(); setSaved(false) }}>Forget the token</button>}
      </form>
    </Layout>
  )
}
