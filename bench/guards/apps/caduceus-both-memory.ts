import { serveCaduceus } from '../shared.js';

serveCaduceus('both', 'memory');
