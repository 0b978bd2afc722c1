/**
 * gracefulShutdown() in process, with `exit` injected: the order (readiness, listener, connections,
 * resources, exit), keep-alive and streaming connections closed without waiting for the keep-alive
 * timeout, bounded and failing resources, beforeClose, idempotence and signal listeners (emitted on
 * `process`, not sent). Real signals and a real exit: shutdown-process.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Express } from 'express';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { makeHealth } from './support';

interface Listening {
  server: http.Server;
  port: number;
}

const servers: http.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

async function listen(app: Express): Promise<Listening> {
  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function get(
  port: number,
  path: string,
  agent: http.Agent | false = false,
): Promise<{ status: number; connection?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
        });
      })
      .on('error', reject);
  });
}

/** What a shutdown did, in order. */
function recorder(): { events: string[]; exit: (code: number) => void; codes: number[] } {
  const events: string[] = [];
  const codes: number[] = [];
  return {
    events,
    codes,
    exit: (code) => {
      codes.push(code);
      events.push(`exit ${code}`);
    },
  };
}

describe.each(eachExpress)('%s', (_label, { express }) => {
  it('readiness first, then the listener, then the resources in order, then exit 0', async () => {
    const health = makeHealth();
    const app = express();
    app.use(health);
    const { server, port } = await listen(app);
    const rec = recorder();
    server.on('close', () => rec.events.push('server closed'));
    const log = captureLogger('shutdown');
    const tracing = {
      shutdown: async () => {
        await sleep(10);
        rec.events.push('tracing');
      },
    };
    const shutdown = core.gracefulShutdown(server, {
      signals: [],
      health,
      logger: log.logger,
      exit: rec.exit,
      resources: [
        { name: 'flags', close: () => void rec.events.push('flags') },
        () => {
          rec.events.push('function');
        },
        tracing,
        health,
      ],
    });
    expect(shutdown.shuttingDown).toBe(false);
    const done = shutdown.shutdown('test');
    expect(shutdown.shuttingDown).toBe(true);
    expect(health.shuttingDown).toBe(true);
    expect(shutdown.shutdown('again')).toBe(done);
    await done;
    expect(rec.events).toEqual(['server closed', 'flags', 'function', 'tracing', 'exit 0']);
    expect(server.listening).toBe(false);
    await expect(get(port, '/health/live')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const lines = log.lines().map((l) => [l.message, l.resource]);
    expect(lines).toEqual([
      ['shutting down', undefined],
      ['server stopped: every request answered', undefined],
      ['resource closed', 'flags'],
      ['resource closed', 'resources[1]'],
      ['resource closed', 'resources[2]'],
      ['resource closed', 'resources[3]'],
      ['shutdown complete', undefined],
    ]);
  });

  it('idle keep-alive connections and a response streamed since before the signal do not hold the stop', async () => {
    const app = express();
    app.get('/fast', (_req, res) => {
      res.json({ ok: true });
    });
    app.get('/stream', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part 1\n');
      setTimeout(() => res.end('part 2\n'), 300);
    });
    const { server, port } = await listen(app);
    server.keepAliveTimeout = 10_000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const rec = recorder();
    // Created right after listen(), as an application does: it sees every request.
    const shutdown = core.gracefulShutdown(server, {
      signals: [],
      exit: rec.exit,
      logger: captureLogger().logger,
    });
    try {
      // Two idle keep-alive connections…
      await Promise.all([get(port, '/fast', agent), get(port, '/fast', agent)]);
      // …and one streaming, its headers already sent.
      const streaming = get(port, '/stream', agent);
      await sleep(50);
      const start = performance.now();
      await shutdown.shutdown();
      expect(await streaming).toMatchObject({ status: 200 });
      expect(rec.codes).toEqual([0]);
      // Well under the 10 s keep-alive timeout: nothing waited for it.
      expect(performance.now() - start).toBeLessThan(1500);
    } finally {
      agent.destroy();
    }
  });
});

describe('resources and hooks', () => {
  async function server(): Promise<http.Server> {
    const { server: s } = await listen(require('express')() as Express);
    return s;
  }

  it('a failing resource and a hung one are logged (code only) and passed; the rest still close; exit 1', async () => {
    const rec = recorder();
    const log = captureLogger('shutdown');
    await core
      .gracefulShutdown(await server(), {
        signals: [],
        exit: rec.exit,
        logger: log.logger,
        resourceTimeoutMs: 100,
        resources: [
          {
            name: 'redis',
            close: () =>
              Promise.reject(Object.assign(new Error('redis://:pw@cache failed'), { code: 'ECONNRESET' })),
          },
          { name: 'hung', close: () => new Promise(() => undefined) },
          { name: 'db', close: () => void rec.events.push('db') },
        ],
      })
      .shutdown();
    expect(rec.events).toEqual(['db', 'exit 1']);
    const failures = log.lines().filter((l) => l.level === 'error');
    expect(failures).toMatchObject([
      { message: 'resource failed to close', resource: 'redis', error: 'ECONNRESET' },
      { message: 'resource did not close in time', resource: 'hung', timeout_ms: 100 },
    ]);
    expect(log.raw()).not.toContain('pw@cache');
  });

  it('delayMs and beforeClose run before the listener closes; a failing beforeClose makes it exit 1', async () => {
    const app = require('express')() as Express;
    const health = makeHealth();
    app.use(health);
    const { server: s, port } = await listen(app);
    const rec = recorder();
    const during: number[] = [];
    await core
      .gracefulShutdown(s, {
        signals: [],
        exit: rec.exit,
        health,
        logger: captureLogger().logger,
        delayMs: 100,
        beforeClose: async () => {
          const ready = await get(port, '/health/ready');
          during.push(ready.status);
          rec.events.push(`beforeClose ${ready.connection ?? ''}`);
          throw new Error('deregistration failed');
        },
      })
      .shutdown();
    expect(during).toEqual([503]);
    expect(rec.events).toEqual(['beforeClose close', 'exit 1']);
  });

  it('signals: one shutdown for two signals, the listeners removed at the end', async () => {
    const signal = 'SIGUSR2';
    const before = process.listenerCount(signal);
    const rec = recorder();
    const log = captureLogger('shutdown');
    const shutdown = core.gracefulShutdown(await server(), {
      signals: [signal],
      exit: rec.exit,
      logger: log.logger,
      resources: [() => sleep(50)],
    });
    expect(process.listenerCount(signal)).toBe(before + 1);
    process.emit(signal, signal);
    process.emit(signal, signal);
    expect(shutdown.shuttingDown).toBe(true);
    await shutdown.shutdown();
    expect(rec.codes).toEqual([0]);
    expect(process.listenerCount(signal)).toBe(before);
    expect(log.lines().map((l) => l.message)).toEqual([
      'shutting down',
      'shutdown already in progress',
      'server stopped: every request answered',
      'resource closed',
      'shutdown complete',
    ]);
    expect(log.lines()[0]).toMatchObject({ reason: 'signal SIGUSR2' });
  });

  it('exit: false stops without exiting; a server that is not listening counts as stopped', async () => {
    const s = await server();
    await new Promise<void>((resolve) =>
      s.close(() => {
        resolve();
      }),
    );
    const closed: string[] = [];
    await core
      .gracefulShutdown(s, {
        signals: [],
        exit: false,
        logger: captureLogger().logger,
        resources: [{ close: () => void closed.push('db') }],
      })
      .shutdown();
    expect(closed).toEqual(['db']);
  });
});
