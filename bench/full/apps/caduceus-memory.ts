// caduceus with the same features as the hand-assembled stack; memory rate-limit store.
import { serveCaduceus } from '../shared.js';

serveCaduceus('memory');
