import { serveCaduceus } from '../shared.js';

serveCaduceus(true);
