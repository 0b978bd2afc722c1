/** Paths by which patient data could slip into a log line, found in review, each pinned by a test. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import knex from 'knex';
import request from 'supertest';
import express from 'express';
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';

const settings = core.loadSettings({ NODE_ENV: 'test' });

describe('log leaks', () => {
  it('a transport format with splat() cannot bring back the raw arguments', () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    });
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const log = core.createLogger('s', {
      console: false,
      settings,
      transports: [
        new winston.transports.Stream({
          stream,
          format: winston.format.combine(winston.format.splat(), winston.format.json()),
        }),
      ],
    });
    log.info('login', { password: 'hunter2', email: 'john@example.org' });
    log.info('token %s', jwt);
    const out = chunks.join('');
    expect(out).toContain('login');
    for (const secret of ['hunter2', 'john@example.org', jwt]) expect(out).not.toContain(secret);
  });

  it('log.error(err) does not write the driver fields of the error (pg detail)', () => {
    const captured = captureLogger('db');
    const err = Object.assign(new Error('duplicate key value violates unique constraint'), {
      code: '23505',
      detail: 'Key (last_name, dob)=(Smith, 1980-02-03) already exists.',
    });
    captured.logger.error(err);
    expect(captured.raw()).toContain('duplicate key');
    expect(captured.raw()).not.toContain('Smith');
    expect(captured.lines()[0]).toMatchObject({ code: '23505', error_type: 'Error' });
  });

  it('a record that merely has a stack field is not taken for an Error (its other fields stay)', () => {
    const captured = captureLogger('x');
    captured.logger.info('deploy', { stack: 'blue-green', region: 'eu-west' });
    expect(captured.lines()[0]).toMatchObject({ stack: 'blue-green', region: 'eu-west' });
  });

  it('an unmapped database error answered 500 logs neither the SQL values nor the stack text of them', async () => {
    const db = knex({
      client: 'better-sqlite3',
      connection: { filename: ':memory:' },
      useNullAsDefault: true,
    });
    const captured = captureLogger('errors');
    try {
      const app = express();
      app.use(core.requestContext());
      app.post(
        '/x',
        core.asyncHandler(async () => {
          await db('missing_table').insert({ name: 'John Smith', diagnosis: 'HIV positive' });
        }),
      );
      app.use(core.errors({ logger: captured.logger, settings }));
      const res = await request(app).post('/x').expect(500);
      expect(JSON.stringify(res.body)).not.toContain('John');
      const raw = captured.raw();
      expect(raw).toContain('no such table');
      expect(raw).not.toContain('John Smith');
      expect(raw).not.toContain('HIV');
    } finally {
      await db.destroy();
    }
  });

  it('a file transport whose directory vanished keeps the process up and warns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'caduceus-vanish-'));
    const transport = new core.FileTransport({
      filename: join(dir, 'logs', 'app.log'),
      maxSize: 1024,
      flushIntervalMs: 0,
    });
    const warnings: unknown[] = [];
    transport.on('warn', (w) => warnings.push(w));
    const log = core.createLogger('v', { console: false, settings, transports: [transport] });
    rmSync(join(dir, 'logs'), { recursive: true, force: true });
    for (let i = 0; i < 40; i++) log.info('x'.repeat(100));
    await core.flushLogger(log);
    await new Promise((r) => setTimeout(r, 50));
    log.info('after');
    await core.flushLogger(log);
    // Rotation recreated the directory and reopened the file: logging goes on, nothing crashed.
    const text = readFileSync(join(dir, 'logs', 'app.log'), 'utf8');
    transport.close();
    rmSync(dir, { recursive: true, force: true });
    expect(text).toContain('"message":"after"');
    expect(warnings).toEqual([expect.objectContaining({ code: 'ENOENT', syscall: 'rename' })]);
  });
});
