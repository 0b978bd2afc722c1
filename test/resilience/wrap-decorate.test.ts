/**
 * `breaker.wrap(fn)` and `breaker.decorate()`, the TC39 (TypeScript 5 standard) method decorator.
 * The decorator syntax is compiled by TypeScript itself here (the test transform does not parse
 * decorators), exactly as an application's build would compile it.
 */
import { runInThisContext } from 'node:vm';
import ts from 'typescript';
import * as core from '../../lib/index';
import { breakers, refused, rejectionOf } from './support';

const make = breakers();
afterEach(() => make.closeAll());

describe('wrap', () => {
  it('keeps the parameters, the this and the result, and counts through the breaker', async () => {
    const { breaker } = make({ failureThreshold: 2 });
    const client = { base: 'https://labs.example' };
    async function get(this: typeof client, path: string, id: number): Promise<string> {
      if (id < 0) throw refused();
      return Promise.resolve(`${this.base}${path}/${id}`);
    }
    const wrapped = breaker.wrap(get);
    expect(wrapped.name).toBe('get');
    await expect(wrapped.call(client, '/results', 7)).resolves.toBe('https://labs.example/results/7');
    await rejectionOf(wrapped.call(client, '/results', -1));
    await rejectionOf(wrapped.call(client, '/results', -1));
    expect(await rejectionOf(wrapped.call(client, '/results', 7))).toMatchObject({ code: 'CIRCUIT_OPEN' });
  });

  it('a wrapped function with a fallback returns the fallback type', async () => {
    const { breaker } = make({ failureThreshold: 1, fallback: () => null });
    const find = breaker.wrap((id: string) =>
      Promise.reject(Object.assign(new Error(id), { code: 'ECONNRESET' })),
    );
    const result: string | null = await find('x');
    expect(result).toBeNull();
  });

  it('refuses what is not a function', () => {
    const { breaker } = make();
    expect(() => breaker.wrap('fetch' as never)).toThrow(core.ConfigError);
  });
});

describe('decorate', () => {
  function compile(source: string): string {
    const out = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS },
    });
    return out.outputText;
  }

  it('decorates methods in standard decorator syntax', async () => {
    const { breaker } = make({ failureThreshold: 1, fallback: () => 'cached' });
    const code = compile(`
      class LabClient {
        base = 'https://labs.example';
        calls = 0;
        @breaker.decorate()
        async results(id) {
          this.calls++;
          if (id === 'down') throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' });
          return this.base + '/results/' + id;
        }
      }
      module.exports = new LabClient();
    `);
    const module = { exports: {} as { results(id: string): Promise<string>; calls: number } };
    const load = runInThisContext(`(function (module, breaker) {\n${code}\n})`) as (
      m: typeof module,
      b: core.CircuitBreaker<string>,
    ) => void;
    load(module, breaker);
    const client = module.exports;
    await expect(client.results('7')).resolves.toBe('https://labs.example/results/7');
    await expect(client.results('down')).resolves.toBe('cached');
    await expect(client.results('8')).resolves.toBe('cached');
    expect(client.calls).toBe(2);
    expect(breaker.state).toBe('open');
  });

  it('type-checks on an async method (TypeScript 5 decorators)', async () => {
    const { breaker } = make();
    const decorator = breaker.decorate();
    async function results(this: { base: string }, id: string): Promise<string> {
      return Promise.resolve(`${this.base}/${id}`);
    }
    const context = { kind: 'method', name: 'results' } as ClassMethodDecoratorContext<
      { base: string },
      typeof results
    >;
    const decorated = decorator(results, context);
    await expect(decorated.call({ base: 'b' }, '1')).resolves.toBe('b/1');
  });

  it('explains itself when applied as a legacy (experimentalDecorators) decorator', () => {
    const { breaker } = make();
    const legacy = breaker.decorate() as unknown as (
      target: object,
      key: string,
      d: PropertyDescriptor,
    ) => void;
    expect(() => {
      legacy({}, 'results', { value: () => undefined });
    }).toThrow(/standard \(TC39\) method decorator.*experimentalDecorators/);
  });
});
