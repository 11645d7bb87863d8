// s3rver 3.7.1 ships no types: just what test/s3-server.ts uses.
declare module 's3rver' {
  import type { AddressInfo } from 'node:net'

  interface S3rverOptions {
    address?: string
    port?: number
    silent?: boolean
    directory?: string
    resetOnClose?: boolean
    allowMismatchedSignatures?: boolean
    vhostBuckets?: boolean
    serviceEndpoint?: string
    configureBuckets?: Array<{ name: string, configs?: Array<string | Buffer> }>
  }

  class S3rver {
    constructor (options?: S3rverOptions)
    /** Configures the buckets, listens, and resolves to the bound address. */
    run (): Promise<AddressInfo>
    close (): Promise<void>
    reset (): void
  }
  export = S3rver
}
