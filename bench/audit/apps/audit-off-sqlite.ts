import { serveAudit } from '../shared.js';

serveAudit(false, 'sqlite');
