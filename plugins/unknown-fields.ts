/**
 * Request fields that a route's schema does not know are ignored, as vLLM does, so that clients
 * sending another server's extras (`top_k`, `repetition_penalty`, ...) keep working; but never
 * silently: each unknown name is logged once, at warn, the first time a request carries it. A
 * client that misspells a field finds it in the server's log instead of getting different
 * behaviour without a word. (OpenAI answers 400 instead; that would break those clients.)
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { excerpt } from '../src/openai/errors.js';

/** Names remembered; beyond, new ones are no longer logged, so a client cannot grow the set without bound. */
const MAX_NAMES = 1024;

/** The property names a route's body schema declares, or null when it declares none. */
function knownFields(request: FastifyRequest): ReadonlySet<string> | null {
  const body: unknown = request.routeOptions.schema?.body;
  if (typeof body !== 'object' || body === null || !('properties' in body)) return null;
  const properties = body.properties;
  return typeof properties === 'object' && properties !== null ? new Set(Object.keys(properties)) : null;
}

const unknownFieldsPlugin: FastifyPluginAsync = async (fastify) => {
  const known = new Map<string, ReadonlySet<string> | null>();
  const logged = new Set<string>();
  fastify.addHook('preValidation', async (request) => {
    const body: unknown = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || logged.size >= MAX_NAMES) return;
    const route = `${request.method} ${request.routeOptions.url ?? ''}`;
    if (!known.has(route)) known.set(route, knownFields(request));
    const fields = known.get(route);
    if (fields == null) return;
    for (const name of Object.keys(body)) {
      if (fields.has(name) || logged.has(`${route} ${name}`) || logged.size >= MAX_NAMES) continue;
      logged.add(`${route} ${name}`);
      request.log.warn({ route, field: excerpt(name) }, `unknown request field '${excerpt(name)}' ignored (logged once per field)`);
    }
  });
};

export default fp(unknownFieldsPlugin, { name: 'unknown-fields', fastify: '5.x' });
