import { servePromBundle } from '../shared.js';

servePromBundle();
