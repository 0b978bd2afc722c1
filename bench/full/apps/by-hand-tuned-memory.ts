// The stack assembled by hand, tuned: the JWT secret a KeyObject; memory rate-limit store.
import { serveByHand } from '../shared.js';

serveByHand('memory', 'keyobject');
