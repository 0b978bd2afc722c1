// Express 5 with caduceus' core pipeline: context, access log to a file, 404 and error handling.
import express from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCaduceus } from '../support/caduceus.js';
import { countLines } from '../support/files.js';
import { getPatient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

const core = loadCaduceus();
const dir = mkdtempSync(join(tmpdir(), 'caduceus-bench-'));
const accessFile = join(dir, 'access.log');
const accessLog = core.createLogger('access', { console: false, file: accessFile });
const errorLog = core.createLogger('errors', { console: false });

const app = express();
app.use(core.requestContext());
app.use(core.logging({ logger: accessLog }));
app.get(PATIENT_PATH, getPatient);
app.use(core.notFound());
app.use(core.errors({ logger: errorLog }));

serve(app, {
  description: 'Express 5 + requestContext, logging (JSON lines to a file), notFound, errors',
  async shutdown() {
    await core.flushLogger(accessLog);
    // Counted so the report can show that every request was really logged.
    const accessLogLines = countLines(accessFile);
    accessLog.close();
    rmSync(dir, { recursive: true, force: true });
    return { accessLogLines };
  },
});
