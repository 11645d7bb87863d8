import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { Deployment } from 'kubernetes-models/apps/v1'
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { ROOT } from '../helpers.js'

// deploy/kubernetes/ checked against the Kubernetes schemas
// (kubernetes-models' validate()), and against what the service needs.

const MODELS: Record<string, new (data: any) => { validate: () => void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget
}

const DIR = join(ROOT, 'deploy/kubernetes')

async function manifests () {
  const out: any[] = []
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(DIR, file), 'utf8'))) out.push(doc.toJS())
  }
  return out
}

const validate = (object: any) => {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`]
  if (!Model) throw new Error(`no schema for ${object.apiVersion} ${object.kind}`)
  new Model(object).validate()
}

t.test('every manifest is valid against its Kubernetes schema', async (t) => {
  const objects = await manifests()
  t.same(objects.map((o) => o.kind).sort(),
    ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Secret', 'Service'])
  for (const object of objects) t.doesNotThrow(() => validate(object), `${object.kind} ${object.metadata.name}`)
})

t.test('the check can fail: a misspelt field is refused', async (t) => {
  const deployment = (await manifests()).find((o) => o.kind === 'Deployment')
  deployment.spec.replicas = 'one'
  t.throws(() => validate(deployment))
})

t.test('the Deployment probes /healthz and /readyz, one replica, the data volume at one path in both containers', async (t) => {
  const objects = await manifests()
  const deployment = objects.find((o) => o.kind === 'Deployment')
  t.equal(deployment.spec.replicas, 1, 'SQLite: one writer until the PostgreSQL store exists')
  const [service, engine] = deployment.spec.template.spec.containers
  t.equal(service.livenessProbe.httpGet.path, '/healthz')
  t.equal(service.readinessProbe.httpGet.path, '/readyz')
  const config = objects.find((o) => o.kind === 'ConfigMap').data
  const dataMount = (c: any) => c.volumeMounts.find((m: any) => m.name === 'data').mountPath
  t.equal(dataMount(service), config.COSA_BUILDD_DATA_DIR)
  t.equal(dataMount(engine), config.COSA_BUILDD_DATA_DIR, 'the engine resolves bind mounts at the same path')
  const tokens = objects.find((o) => o.kind === 'Secret').stringData
  t.throws(() => loadConfig({ ...config, ...tokens }), /placeholder token/, 'the placeholder tokens are refused')
  t.equal(loadConfig({ ...config, COSA_BUILDD_ADMIN_TOKENS: 'x'.repeat(20) }).docker.socketPath, '/run/engine/docker.sock',
    'the ConfigMap loads, with the sidecar engine\'s socket')
})
