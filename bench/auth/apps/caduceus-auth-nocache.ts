// As caduceus-auth, with the verified-token cache off: every request verifies the HMAC signature.
import { serveCaduceusAuth } from '../shared.js';

serveCaduceusAuth(
  "caduceus pipeline + createAuth({redis: false, cacheSize: 0}).authenticate() + requireRoles('provider')",
  0,
);
