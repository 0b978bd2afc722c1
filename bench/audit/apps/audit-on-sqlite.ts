import { serveAudit } from '../shared.js';

serveAudit(true, 'sqlite');
