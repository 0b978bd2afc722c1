// The baseline of `npm run bench:auth`: caduceus' pipeline and the route, no authentication.
import { serveCaduceusApp } from '../shared.js';

serveCaduceusApp('Express 5 + requestContext, logging (file), notFound, errors; no authentication', () => []);
