import { serveCaduceus } from '../shared.js';

serveCaduceus('rate-limit', 'memory');
