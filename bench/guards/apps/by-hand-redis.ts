import { serveByHand } from '../shared.js';

serveByHand('redis');
