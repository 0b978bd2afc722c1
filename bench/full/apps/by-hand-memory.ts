// The stack assembled by hand as the libraries' READMEs wire it (JWT secret a string), memory rate-limit store.
import { serveByHand } from '../shared.js';

serveByHand('memory', 'string');
