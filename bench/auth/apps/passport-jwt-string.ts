// passport-jwt as its README shows it: `secretOrKey` a string (jsonwebtoken converts it on every verify).
import { servePassportJwt } from '../passport.js';
import { SECRET } from '../shared.js';

servePassportJwt('caduceus pipeline + passport-jwt (secretOrKey: string) + hand-written role check', SECRET);
