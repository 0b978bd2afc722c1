// passport-jwt with `secretOrKey: crypto.createSecretKey(...)`: jsonwebtoken skips its per-verify key parsing.
import { createSecretKey } from 'node:crypto';
import { servePassportJwt } from '../passport.js';
import { SECRET } from '../shared.js';

servePassportJwt(
  'caduceus pipeline + passport-jwt (secretOrKey: KeyObject) + hand-written role check',
  createSecretKey(Buffer.from(SECRET, 'utf8')),
);
