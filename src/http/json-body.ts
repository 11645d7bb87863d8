import { errors } from '../errors.js'

// Request bodies are parsed here rather than by fastify's default parser, so
// that each refusal says what is wrong: fastify reports a prototype-poisoning
// key as "not valid JSON", which sends clients looking in the wrong place.

export function parseJson (text: string): unknown {
  if (text === '') throw errors.invalidRequest('body: the Content-Type is application/json but the body is empty')
  try {
    // The reviver costs a recursion per level: only bodies that name the keys pay it.
    if (!/"(?:__proto__|constructor)"/.test(text)) return JSON.parse(text)
    return JSON.parse(text, (key, value) => {
      if (key === '__proto__') throw errors.invalidRequest('body: the key "__proto__" is not accepted')
      if (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value) {
        throw errors.invalidRequest('body: the key "constructor.prototype" is not accepted')
      }
      return value
    })
  } catch (err) {
    if (err instanceof SyntaxError) throw errors.invalidRequest(`body: invalid JSON (${err.message})`)
    if (err instanceof RangeError) throw errors.invalidRequest('body: the JSON is nested too deeply')
    throw err
  }
}
