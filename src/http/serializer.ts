import fastJson from 'fast-json-stringify'
import type { FastifySerializerCompiler } from 'fastify'
import { z } from 'zod'

// Responses are serialized by fast-json-stringify from the JSON Schema of the
// zod response schemas, as fastify does by default, instead of by zod: the
// schemas describe output only (no transforms), so the result is the same
// and it is several times faster (bench/api.ts).

export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = ({ schema }) =>
  fastJson(z.toJSONSchema(schema, { io: 'output', target: 'draft-7', unrepresentable: 'any' }) as object)
