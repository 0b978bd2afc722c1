// The stack assembled by hand, tuned: the JWT secret a KeyObject; redis rate-limit store.
import { serveByHand } from '../shared.js';

serveByHand('redis', 'keyobject');
