/**
 * Unknown request fields are ignored, never silently: the first request that carries a name
 * logs it once, at warn; known fields and later requests log nothing more.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { testApp } from '../helpers/app.js';
import { testServedModel } from '../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());

t.test('each unknown field name is logged once, and the request still succeeds', async (t) => {
  const warnings: { field?: string; route?: string; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = JSON.parse(chunk.toString()) as { level: number; field?: string; route?: string; msg: string };
      if (line.level === 40) warnings.push(line);
      done();
    },
  });
  const app = await testApp(t, { models: [model], loggerInstance: pino({ level: 'info' }, sink) });
  const post = (payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, prompt: 'Hi', max_tokens: 2, ...payload } });

  t.equal((await post({ repetition_penalty: 1.1 })).statusCode, 200, "another server's extra field is ignored");
  t.equal((await post({ repetition_penalty: 1.2, temprature: 0 })).statusCode, 200);
  t.equal((await post({ temperature: 0 })).statusCode, 200);
  t.same(
    warnings.map((w) => [w.route, w.field]),
    [
      ['POST /v1/completions', 'repetition_penalty'],
      ['POST /v1/completions', 'temprature'],
    ],
    'each unknown name once, a misspelling included; known fields never',
  );
  t.match(warnings[1].msg, /unknown request field 'temprature' ignored/);

  const long = 'x'.repeat(10_000);
  t.equal((await post({ [long]: 1 })).statusCode, 200);
  t.ok(warnings[2].msg.length < 200, 'a long name is quoted as an excerpt');
});
