import type { BuildState, FailureReason } from './build-state.js'

export interface StreamConfig {
  url: string
  ref: string
}

export interface StreamResources {
  memoryBytes?: number | undefined
  cpus?: number | undefined
  pids?: number | undefined
}

export interface Stream {
  name: string
  config: StreamConfig
  image: string
  platforms: string[]
  timeoutSeconds: number
  resources: StreamResources
  networkMode?: string | undefined
  recipe: string[][]
  createdAt: string
  updatedAt: string
}

export interface BuildRequest {
  force: boolean
  skipPrune: boolean
  version?: string | undefined
  commit?: string | undefined
  platforms?: string[] | undefined
}

export interface Artifact {
  name: string
  path: string
  sha256: string
  size: number
}

export interface BuildResult {
  cosaBuildId: string
  arch: string
  ostreeCommit: string
  artifacts: Artifact[]
}

export interface Build {
  id: string
  seq: number
  stream: string
  state: BuildState
  reason?: FailureReason | undefined
  message?: string | undefined
  exitCode?: number | undefined
  request: BuildRequest
  configCommit?: string | undefined
  containerId?: string | undefined
  result?: BuildResult | undefined
  createdAt: string
  startedAt?: string | undefined
  finishedAt?: string | undefined
  cancelRequestedAt?: string | undefined
}

/** What a build's container reported through POST /v1/builds/{id}/result. */
export interface PostedResult {
  outcome: 'built' | 'unchanged'
  result: BuildResult
  metaJson: string
}
