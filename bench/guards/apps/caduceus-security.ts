import { serveCaduceus } from '../shared.js';

serveCaduceus('security', 'memory');
