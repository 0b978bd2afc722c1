import { serveCaduceus } from '../shared.js';

serveCaduceus(false);
