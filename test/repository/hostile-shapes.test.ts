/** Inputs in the wrong shape (parsed JSON, a typo in code) are a 400/422, never a TypeError or a 500. */
import * as core from '../../lib/index';

const settings = core.loadSettings({ NODE_ENV: 'test' });
let db: core.Database;
let repo: core.BaseRepository<{ id: number; mrn: string; name: string }>;

beforeAll(async () => {
  db = core.createDatabase({
    url: 'sqlite::memory:',
    settings,
    logger: core.createLogger('db', { console: false, settings }),
  });
  await db.knex.schema.createTable('pt', (t) => {
    t.increments('id');
    t.string('mrn').notNullable().unique();
    t.string('name');
    t.string('note');
    t.datetime('created_at', { precision: 3 });
    t.datetime('updated_at', { precision: 3 });
  });
  repo = new core.BaseRepository(db, {
    table: 'pt',
    resource: 'Patient',
    filterable: ['mrn', 'name'],
    sortable: ['name'],
  });
  await repo.create({ mrn: 'M1', name: 'A' });
});
afterAll(async () => {
  await db.close();
});

async function failure(run: () => Promise<unknown>): Promise<{ status: number; code: string } | string> {
  try {
    await run();
    return 'no error';
  } catch (err) {
    return core.isAppError(err) ? { status: err.status, code: err.code } : `not an AppError: ${String(err)}`;
  }
}

describe('hostile shapes', () => {
  it.each([
    ['a null filter', { filters: [null] }],
    ['an or that is not a list', { filters: [{ or: null }] }],
    ['an or of strings', { filters: [{ or: 'x' }] }],
    ['an or group that is not a list', { filters: [{ or: [5] }] }],
    ['sort that is a number', { sort: 5 }],
    ['sort with a null entry', { sort: [null] }],
  ])('list() with %s is a 400 VALIDATION_ERROR', async (_label, options) => {
    expect(await failure(() => repo.list(options as never))).toEqual({
      status: 400,
      code: 'VALIDATION_ERROR',
    });
  });

  it('an unknown field in a write is a 422 naming the field, not a 500', async () => {
    expect(await failure(() => repo.update(1, { name: 'x', bogus: 1 } as never))).toEqual({
      status: 422,
      code: 'VALIDATION_ERROR',
    });
    const err = await repo.create({ mrn: 'M9', bogus: 1 } as never).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 422, fieldErrors: { bogus: 'is not a known field' } });
  });

  it('a value can never pass for the column name of a duplicate', async () => {
    const err = await repo
      .create({ mrn: 'M1', note: 'constraint failed: a.JohnSmithHIV' } as never)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 409, code: 'DUPLICATE', field: 'mrn' });
    expect(JSON.stringify((err as core.AppError).details)).not.toContain('JohnSmith');
  });
});
