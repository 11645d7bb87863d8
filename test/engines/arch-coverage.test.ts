import t from 'tap'
import { archWarnings } from '../../src/engines/arch-coverage.js'

// The decision alone; test/http/engines.test.ts has it through PUT /v1/streams/{stream}.

t.test('an arch no engine serves, or whose engines all drain, is a warning; one served is not', async (t) => {
  const engines = [{ name: 'a', arch: 'x86_64', draining: false }, { name: 'b', arch: 'aarch64', draining: true }]
  t.same(archWarnings(['x86_64'], engines), [])
  t.match(archWarnings(['s390x'], engines), [/^no engine serves s390x: .*no_engine_for_arch.*PUT \/v1\/engines/])
  t.match(archWarnings(['aarch64'], engines), [/^every engine of aarch64 is draining \(b\)/])
  t.match(archWarnings(['s390x'], [...engines, { name: 'new', draining: false }]), [/new never answered: it may serve it/],
    'an engine never heard from is named')
})
