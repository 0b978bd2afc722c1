// caduceus' pipeline + authenticate() (HS256, verified-token cache on, the default) + requireRoles('provider').
import { serveCaduceusAuth } from '../shared.js';

serveCaduceusAuth(
  "caduceus pipeline + createAuth({redis: false}).authenticate() + requireRoles('provider')",
  undefined,
);
