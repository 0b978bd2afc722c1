/**
 * Authentication hand-wired with passport + passport-jwt the way passport-jwt's README shows it
 * (bearer header, issuer, audience; plus the algorithm allow-list it documents), with a
 * hand-written role check. `--suite auth` puts it inside the caduceus pipeline; `--suite full`
 * into the stack assembled by hand.
 */
import type { KeyObject } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import passport from 'passport';
import { ExtractJwt, Strategy as JwtStrategy } from 'passport-jwt';
import { AUDIENCE, ISSUER, ROLE, serveCaduceusApp } from './shared.js';

interface PayloadUser {
  sub?: unknown;
  email?: unknown;
  roles?: unknown;
}

/** `passport.authenticate('jwt', {session: false})` and a role check, for the patient route. */
export function passportJwt(secretOrKey: string | KeyObject): [RequestHandler, RequestHandler] {
  passport.use(
    new JwtStrategy(
      {
        jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
        // @types/passport-jwt says string | Buffer; jsonwebtoken takes a KeyObject as is.
        secretOrKey: secretOrKey as string,
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
      },
      (payload: PayloadUser, done: (err: unknown, user?: unknown) => void) => {
        done(null, {
          id: payload.sub,
          email: payload.email,
          roles: Array.isArray(payload.roles) ? payload.roles : [],
        });
      },
    ),
  );
  const requireProvider = (req: Request, res: Response, next: NextFunction): void => {
    const roles = (req.user as { roles?: unknown } | undefined)?.roles;
    if (Array.isArray(roles) && roles.includes(ROLE)) next();
    else res.status(403).json({ error: 'forbidden' });
  };
  const authenticate = passport.authenticate('jwt', { session: false }) as RequestHandler;
  return [authenticate, requireProvider];
}

export function servePassportJwt(description: string, secretOrKey: string | KeyObject): void {
  const guards = passportJwt(secretOrKey);
  serveCaduceusApp(description, () => guards);
}
