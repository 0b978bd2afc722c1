// caduceus with the same features as the hand-assembled stack; redis rate-limit store.
import { serveCaduceus } from '../shared.js';

serveCaduceus('redis');
