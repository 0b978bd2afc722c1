import { serveCaduceus } from '../shared.js';

serveCaduceus('both', 'redis');
