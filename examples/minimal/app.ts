/**
 * The smallest adoption of caduceus: request ids, an access log, and one error format.
 * Run it with `npx tsx examples/minimal/app.ts`; import it to get the app without listening.
 */
import defaultExpress from 'express';
import type { Express } from 'express';
import type { Logger } from '../../lib/index';
import { errors, getRequestId, logging, notFound, requestContext } from '../../lib/index';

export interface MinimalOptions {
  /** The `express` module. Default: the installed `express`; tests also pass Express 4. */
  express?: () => Express;
  /** Logger for access lines and errors. Default: the ones `logging()` and `errors()` create. */
  logger?: Logger;
}

export function createApp(options: Readonly<MinimalOptions> = {}): Express {
  const app = (options.express ?? defaultExpress)();
  const logger = options.logger;

  app.use(requestContext());
  app.use(logging(logger === undefined ? {} : { logger }));

  app.get('/', (_req, res) => {
    res.json({ message: 'Hello from caduceus', request_id: getRequestId() });
  });

  app.use(notFound());
  app.use(errors(logger === undefined ? {} : { logger }));
  return app;
}

export const app = createApp();

if (require.main === module) {
  const port = Number(process.env.PORT ?? 3000);
  app.listen(port, () => {
    process.stdout.write(`minimal example listening on http://localhost:${port}\n`);
  });
}
