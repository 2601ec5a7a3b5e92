/**
 * The fuzzer's request generator: every case is a pure function of (seed, index), drawn from
 * the project's PRNG, so any case of a run can be regenerated alone to reproduce a failure.
 * Cases start from valid requests of every route and mutate them: fields dropped, added or
 * given the wrong type, extreme numbers and number literals JSON.stringify cannot write,
 * deep nesting, long and odd Unicode strings, many prompts, token ids out of range, broken
 * JSON, wrong content types, empty bodies, unknown routes and methods.
 */
import { Prng } from '../../src/random.js';

export interface FuzzContext {
  /** A served model's id. */
  model: string;
  vocabSize: number;
  contextLength: number;
}

export interface FuzzCase {
  seed: number;
  index: number;
  /** "METHOD /route" without the query, for the summary. */
  route: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** What was done to the valid request, for reports. */
  notes: string[];
}

/** JSON text inserted as is, for what JSON.stringify cannot write (1e999, deep nesting, escaped lone surrogates). */
class Raw {
  constructor(readonly text: string) {}
}

type Json = null | boolean | number | string | Raw | Json[] | { [key: string]: Json | undefined };

function serialize(value: Json | undefined): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => serialize(v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${serialize(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Draws from one case's PRNG. */
class Draw {
  constructor(private readonly prng: Prng) {}
  float(): number {
    return this.prng.next();
  }
  chance(p: number): boolean {
    return this.prng.next() < p;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.prng.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.prng.next() * items.length)];
  }
  weighted<T>(items: readonly [T, number][]): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    let x = this.prng.next() * total;
    for (const [item, w] of items) {
      x -= w;
      if (x < 0) return item;
    }
    return items[items.length - 1][0];
  }
}

const WORDS = [
  'Once',
  'upon',
  'a',
  'time',
  'there',
  'was',
  'little',
  'dog',
  'named',
  'Lily',
  'she',
  'liked',
  'to',
  'play',
  'in',
  'the',
  'park',
  'sun',
  'happy',
  'big',
];
const ODD_PIECES = [
  'é',
  'e\u0301',
  '日本語',
  '🙂',
  '👩‍👩‍👧',
  '\u202e',
  '\ufeff',
  '\u0000',
  '\u0007',
  '\ud800',
  '\udc00',
  '\udfff\ud800',
  '\uffff',
  '\t\n\r',
  '"',
  '\\',
  '</script>',
  '%s%n',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a deliberate fuzz payload, a plain string that looks like a template placeholder
  '${x}',
  "' OR 1=1 --",
  '\u2028',
];
const NUMBER_LITERALS = [
  '1e999',
  '-1e999',
  '-0',
  '1E+2',
  '0.0000001',
  '123456789012345678901234567890',
  '9007199254740993',
  '-9007199254740993',
  '1.0',
  '5e-324',
];
const WEIRD_STRINGS = [
  '',
  ' ',
  '0',
  '0.5',
  '-1',
  'NaN',
  'Infinity',
  '-Infinity',
  'null',
  'true',
  'undefined',
  '[]',
  '{}',
  '1e999',
  's',
  's999',
  's-1',
  'dense ',
  'DENSE',
  'static',
  'token',
];

function text(d: Draw, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(d.pick(WORDS));
  return out.join(' ');
}

function oddString(d: Draw): string {
  const parts: string[] = [];
  const n = d.int(1, 12);
  for (let i = 0; i < n; i++) parts.push(d.chance(0.5) ? d.pick(ODD_PIECES) : d.pick(WORDS));
  return parts.join(d.pick(['', ' ']));
}

/** Up to ~100 KB: prose, one repeated character (a tokenizer's worst case), or odd Unicode. */
function longString(d: Draw): string {
  const length = d.pick([1000, 4000, 10_000, 30_000, 100_000]);
  const kind = d.int(0, 2);
  if (kind === 0) return text(d, Math.ceil(length / 5)).slice(0, length);
  if (kind === 1) return d.pick(['a', ' ', '🙂', '\u0000', 'ab']).repeat(length);
  let s = '';
  while (s.length < length) s += oddString(d);
  return s.slice(0, length);
}

function deepNesting(d: Draw): Raw {
  const depth = d.pick([10, 100, 1000, 10_000, 50_000]);
  return d.chance(0.5) ? new Raw('['.repeat(depth) + ']'.repeat(depth)) : new Raw(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
}

function weirdValue(d: Draw, ctx: FuzzContext): Json {
  switch (d.int(0, 13)) {
    case 0:
      return null;
    case 1:
      return d.pick([true, false]);
    case 2:
      return d.pick([0, -1, 1.5, -0.5, 2, 3, 17, 100, 1e308, -1e308, 2 ** 31, 2 ** 53 + 2, 1e21, ctx.vocabSize, ctx.contextLength]);
    case 3:
      return new Raw(d.pick(NUMBER_LITERALS));
    case 4:
      return d.pick(WEIRD_STRINGS);
    case 5:
      return oddString(d);
    case 6:
      return longString(d);
    case 7:
      return d.pick([[], {}, [null], [[]], { a: 1 }, [1, 'a', null], [true]]);
    case 8:
      return deepNesting(d);
    case 9:
      return Array.from({ length: d.pick([10, 100, 1000, 5000]) }, () => d.int(0, ctx.vocabSize - 1));
    case 10:
      return Array.from({ length: d.pick([10, 100, 500]) }, () => text(d, d.int(1, 4)));
    case 11:
      // Escapes JSON.parse turns into lone surrogates and NUL.
      return new Raw(`"${d.pick(['\\ud800', '\\udc00x', '\\u0000', '\\ud83d\\ude42', 'a\\ud800b'])}"`);
    case 12:
      return { [d.pick(['include_usage', 'x', '__proto__', 'constructor'])]: weirdValue(d, ctx) };
    default:
      return text(d, d.int(0, 6));
  }
}

function tokenIds(d: Draw, ctx: FuzzContext, max = 12): number[] {
  return Array.from({ length: d.int(1, max) }, () => d.int(1, ctx.vocabSize - 1));
}

function validPrompt(d: Draw, ctx: FuzzContext): Json {
  switch (d.int(0, 3)) {
    case 0:
      return text(d, d.int(1, 8));
    case 1:
      return Array.from({ length: d.int(1, 3) }, () => text(d, d.int(1, 6)));
    case 2:
      return tokenIds(d, ctx);
    default:
      return Array.from({ length: d.int(1, 3) }, () => tokenIds(d, ctx, 6));
  }
}

function executionFields(d: Draw, body: Record<string, Json | undefined>): void {
  if (d.chance(0.2)) body.sparsity = d.pick<Json>([0, 0.25, 0.5, 0.8, 0.95, 'dense', 's50', 's80']);
  else if (d.chance(0.05)) body.latency_budget_ms = d.pick([1, 20, 1000]);
  if (d.chance(0.15)) body.activation = d.pick(['static', 'prompt', 'token']);
  if (d.chance(0.1)) body.sparse_prefill = d.pick([true, false, null]);
}

function validCompletion(d: Draw, ctx: FuzzContext): Record<string, Json | undefined> {
  const body: Record<string, Json | undefined> = { model: ctx.model, prompt: validPrompt(d, ctx), max_tokens: d.int(0, 8) };
  if (d.chance(0.6)) body.temperature = d.pick([0, 0.7, 1, 2]);
  if (d.chance(0.15)) body.top_p = d.pick([0.1, 0.9, 1]);
  if (d.chance(0.15)) body.top_k = d.pick([-1, 0, 1, 5, 40]);
  if (d.chance(0.2)) body.seed = d.int(0, 1000);
  if (d.chance(0.15)) body.n = d.int(1, 3);
  if (d.chance(0.15)) body.stop = d.chance(0.5) ? d.pick(['.', '\n', 'the']) : ['.', 'and'];
  if (d.chance(0.2)) {
    body.stream = true;
    if (d.chance(0.5)) body.stream_options = { include_usage: d.pick([true, false]) };
  }
  if (d.chance(0.15)) body.logprobs = d.int(0, 5);
  if (d.chance(0.1)) body.echo = true;
  if (d.chance(0.05)) body.user = 'fuzz';
  executionFields(d, body);
  return body;
}

function validScore(d: Draw, ctx: FuzzContext): Record<string, Json | undefined> {
  const strings = d.chance(0.6);
  const body: Record<string, Json | undefined> = {
    model: ctx.model,
    prompt: strings || d.chance(0.3) ? text(d, d.int(1, 8)) : tokenIds(d, ctx),
    continuations: Array.from({ length: d.int(1, 4) }, () => (strings ? ` ${text(d, d.int(1, 3))}` : tokenIds(d, ctx, 4))),
  };
  executionFields(d, body);
  return body;
}

function validTokenize(d: Draw, ctx: FuzzContext): Record<string, Json | undefined> {
  const body: Record<string, Json | undefined> = { prompt: text(d, d.int(0, 12)) };
  if (d.chance(0.5)) body.model = ctx.model;
  if (d.chance(0.3)) body.add_special_tokens = d.pick([true, false]);
  return body;
}

function validDetokenize(d: Draw, ctx: FuzzContext): Record<string, Json | undefined> {
  const body: Record<string, Json | undefined> = { tokens: d.chance(0.1) ? [] : tokenIds(d, ctx, 20) };
  if (d.chance(0.5)) body.model = ctx.model;
  return body;
}

const FIELDS: Record<string, string[]> = {
  '/v1/completions': [
    'model',
    'prompt',
    'max_tokens',
    'temperature',
    'top_p',
    'top_k',
    'seed',
    'stop',
    'n',
    'best_of',
    'stream',
    'stream_options',
    'logprobs',
    'echo',
    'suffix',
    'presence_penalty',
    'frequency_penalty',
    'logit_bias',
    'user',
    'sparsity',
    'latency_budget_ms',
    'activation',
    'sparse_prefill',
  ],
  '/v1/score': ['model', 'prompt', 'continuations', 'sparsity', 'latency_budget_ms', 'activation', 'sparse_prefill'],
  '/tokenize': ['model', 'prompt', 'add_special_tokens'],
  '/detokenize': ['model', 'tokens'],
};

/** Mutations that know the route's meaning: the values that reach the engine's own checks. */
function targetedMutation(d: Draw, path: string, body: Record<string, Json | undefined>, ctx: FuzzContext): string {
  const outOfRange = (): number => d.pick([ctx.vocabSize, ctx.vocabSize + 1, 2 ** 31 - 1, 2 ** 32, 2 ** 53]);
  switch (d.int(0, 7)) {
    case 0:
      body.model = d.pick<Json>(['nope', '', ctx.model.toUpperCase(), `${ctx.model} `, longString(d), oddString(d)]);
      return 'model: unknown';
    case 1:
      if (path === '/detokenize') {
        body.tokens = [...tokenIds(d, ctx, 4), outOfRange()];
        return 'tokens: id out of range';
      }
      if (path === '/v1/score' && d.chance(0.5)) {
        body.continuations = [[...tokenIds(d, ctx, 3), outOfRange()]];
        return 'continuations: id out of range';
      }
      body.prompt = d.chance(0.5) ? [...tokenIds(d, ctx, 4), outOfRange()] : [tokenIds(d, ctx, 3), [outOfRange()]];
      return 'prompt: token id out of range';
    case 2:
      if (path === '/v1/score') {
        body.continuations = Array.from({ length: d.pick([64, 65, 200]) }, () => ` ${text(d, d.int(1, 3))}`);
        return 'continuations: many';
      }
      body.prompt = Array.from({ length: d.pick([20, 100, 300]) }, () => text(d, d.int(1, 5)));
      return 'prompt: many prompts';
    case 3:
      body.prompt =
        path === '/tokenize' || d.chance(0.5) ? longString(d) : Array.from({ length: ctx.contextLength + d.int(-2, 50) }, () => d.int(1, ctx.vocabSize - 1));
      return 'prompt: long';
    case 4:
      body.max_tokens = d.pick([ctx.contextLength, ctx.contextLength + 1, 1e6, -1, 2 ** 53, 0]);
      return 'max_tokens: extreme';
    case 5:
      body.n = d.pick([16, 17, 0, -1]);
      body.max_tokens = d.int(1, 8);
      return 'n: extreme';
    case 6:
      body.logprobs = d.pick([20, 21, -1]);
      body.echo = d.pick([true, false]);
      if (d.chance(0.3)) body.max_tokens = 0;
      return 'logprobs: extreme';
    default:
      body.stop = Array.from({ length: d.pick([5, 100]) }, () => text(d, 1));
      return 'stop: many';
  }
}

function mutateFields(d: Draw, path: string, body: Record<string, Json | undefined>, ctx: FuzzContext, notes: string[]): void {
  const count = d.weighted<number>([
    [0, 15],
    [1, 45],
    [2, 25],
    [3, 15],
  ]);
  const fields = FIELDS[path];
  for (let i = 0; i < count; i++) {
    const kind = d.int(0, 4);
    if (kind === 0) {
      const keys = Object.keys(body);
      if (keys.length === 0) continue;
      const key = d.pick(keys);
      delete body[key];
      notes.push(`drop ${key}`);
    } else if (kind === 1 || kind === 2) {
      const key = d.pick(fields);
      const value = weirdValue(d, ctx);
      body[key] = value;
      notes.push(`${key} = ${describe(value)}`);
    } else if (kind === 3) {
      const key = d.pick(['extra', 'Model', 'PROMPT', '', ' ', '🙂', 'a'.repeat(d.pick([10, 10_000]))]);
      const value = weirdValue(d, ctx);
      body[key] = value;
      notes.push(`add field ${describe(key)} = ${describe(value)}`);
    } else {
      notes.push(targetedMutation(d, path, body, ctx));
    }
  }
}

/** A short, printable account of a value. */
function describe(value: Json | undefined): string {
  if (value instanceof Raw) return `raw ${value.text.length > 40 ? `${value.text.slice(0, 20)}... (${value.text.length} chars)` : value.text}`;
  const json = JSON.stringify(value) ?? 'undefined';
  return json.length > 40 ? `${json.slice(0, 30)}... (${json.length} chars)` : json;
}

/** Mutations of the request as bytes: broken JSON, other content types, odd encodings, oversize. */
function mutateBody(d: Draw, json: string, headers: Record<string, string>, notes: string[]): Buffer {
  switch (d.int(0, 9)) {
    case 0: {
      const at = d.int(0, Math.max(0, json.length - 1));
      notes.push(`JSON truncated at ${at}`);
      return Buffer.from(json.slice(0, at));
    }
    case 1: {
      const broken = d.pick([
        `${json}}`,
        `${json},`,
        json.replace(/"/g, "'"),
        json.replace(/,/, ',,'),
        json.replace(/:/, ''),
        `{${json}`,
        `${json}\u0000`,
        json.replace(/}$/, ',}'),
      ]);
      notes.push('invalid JSON');
      return Buffer.from(broken);
    }
    case 2:
      notes.push('empty body');
      return Buffer.alloc(0);
    case 3: {
      const top = d.pick(['[]', '"x"', '1', 'null', 'true', `[${json}]`, '{}']);
      notes.push(`top-level ${top.slice(0, 20)}`);
      return Buffer.from(top);
    }
    case 4: {
      const type = d.pick([
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json; charset=utf-16',
        'application/jsonx',
        'application/json, text/plain',
        'APPLICATION/JSON',
        '',
        '*/*',
      ]);
      if (type === '') delete headers['content-type'];
      else headers['content-type'] = type;
      notes.push(`content-type ${JSON.stringify(type)}`);
      return Buffer.from(json);
    }
    case 5: {
      // Bytes that are not UTF-8, inside a string value.
      const at = json.indexOf('"', json.indexOf(':')) + 1;
      notes.push('invalid UTF-8 bytes');
      return Buffer.concat([Buffer.from(json.slice(0, at)), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from(json.slice(at))]);
    }
    case 6: {
      const key = d.pick(['"__proto__":{"polluted":1}', '"constructor":{"prototype":{"polluted":1}}', '"__proto__":null']);
      notes.push(`prototype key ${key.slice(0, 15)}`);
      return Buffer.from(json.replace(/^\{/, `{${key},`));
    }
    case 7: {
      if (d.chance(0.3)) {
        // Over the default 1 MiB body limit.
        notes.push('body over 1 MiB');
        return Buffer.from(json.replace(/^\{/, `{"padding":"${'x'.repeat(1_100_000)}",`));
      }
      notes.push('duplicate keys');
      return Buffer.from(json.replace(/^\{/, '{"model":1,"prompt":null,'));
    }
    case 8:
      notes.push('whitespace and BOM');
      return Buffer.from(`${d.pick(['\ufeff', '   \n\t', ''])}${json}\n\n  `);
    default:
      notes.push('gzip content-encoding (not compressed)');
      headers['content-encoding'] = 'gzip';
      return Buffer.from(json);
  }
}

const GET_ROUTES = ['/v1/models', '/tokenizer_info', '/health', '/ready', '/metrics', '/openapi.json', '/docs', '/docs/'];
const POST_ROUTES = ['/v1/completions', '/v1/score', '/tokenize', '/detokenize'];
const UNKNOWN_PATHS = [
  '/',
  '/v1/chat/completions',
  '/v1/embeddings',
  '/v1/completions/',
  '/V1/COMPLETIONS',
  '/v1//completions',
  '/v1/models/x',
  '/%00',
  '/..%2f..%2fetc%2fpasswd',
  '/docs/../../etc/passwd',
  '/docs/nope.js',
  '/tokenize/',
  '/v2/completions',
  '/favicon.ico',
];

/** Every byte of the string's UTF-8 (lone surrogates become U+FFFD, which encodeURIComponent refuses). */
function percentEncoded(s: string): string {
  return [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

function query(d: Draw, ctx: FuzzContext): string {
  const value = d.pick([ctx.model, 'nope', '', percentEncoded(oddString(d)), 'a'.repeat(d.pick([100, 5000])), `${ctx.model}&model=${ctx.model}`, '%ZZ', '%00']);
  return d.pick(['?model=', '?model[]=', '?x=', `?model=${ctx.model}&x=`]) + value;
}

/** The case `index` of the run seeded `seed`. */
export function generateCase(seed: number, index: number, ctx: FuzzContext): FuzzCase {
  const d = new Draw(Prng.forLabel(seed, `case ${index}`));
  const notes: string[] = [];
  const headers: Record<string, string> = {};
  const kind = d.weighted<'post' | 'get' | 'unknown' | 'method'>([
    ['post', 70],
    ['get', 16],
    ['unknown', 7],
    ['method', 7],
  ]);

  if (kind === 'get') {
    const path = d.pick(GET_ROUTES);
    const withQuery = d.chance(path === '/tokenizer_info' ? 0.6 : 0.15);
    return { seed, index, route: `GET ${path}`, method: 'GET', path: path + (withQuery ? query(d, ctx) : ''), headers, notes: withQuery ? ['query'] : [] };
  }
  if (kind === 'unknown') {
    const path = d.chance(0.1) ? `/${'x'.repeat(d.pick([1000, 7000]))}` : d.pick(UNKNOWN_PATHS);
    const method = d.pick(['GET', 'POST']);
    if (method === 'POST') headers['content-type'] = 'application/json';
    return {
      seed,
      index,
      route: `${method} (unknown route)`,
      method,
      path,
      headers,
      body: method === 'POST' ? Buffer.from('{"model":"x"}') : undefined,
      notes: ['unknown route'],
    };
  }
  if (kind === 'method') {
    const path = d.pick([...GET_ROUTES, ...POST_ROUTES]);
    const method = POST_ROUTES.includes(path)
      ? d.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'])
      : d.pick(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    const hasBody = !['GET', 'HEAD', 'OPTIONS'].includes(method);
    if (hasBody) headers['content-type'] = 'application/json';
    return {
      seed,
      index,
      route: `${method} ${path} (wrong method)`,
      method,
      path,
      headers,
      body: hasBody ? Buffer.from('{}') : undefined,
      notes: ['wrong method'],
    };
  }

  const path = d.weighted<string>([
    ['/v1/completions', 45],
    ['/v1/score', 20],
    ['/tokenize', 20],
    ['/detokenize', 15],
  ]);
  const body =
    path === '/v1/completions'
      ? validCompletion(d, ctx)
      : path === '/v1/score'
        ? validScore(d, ctx)
        : path === '/tokenize'
          ? validTokenize(d, ctx)
          : validDetokenize(d, ctx);
  mutateFields(d, path, body, ctx, notes);
  headers['content-type'] = 'application/json';
  const json = serialize(body);
  const bytes = d.chance(0.2) ? mutateBody(d, json, headers, notes) : Buffer.from(json);
  if (notes.length === 0) notes.push('valid');
  return { seed, index, route: `POST ${path}`, method: 'POST', path, headers, body: bytes, notes };
}
