import { serveAudit } from '../shared.js';

serveAudit(true, 'postgres');
