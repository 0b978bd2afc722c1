import { serveByHand } from '../shared.js';

serveByHand('memory');
