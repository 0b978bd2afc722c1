/**
 * Why a client certificate is refused: the reasons, their 401 messages and codes, and how OpenSSL's
 * verification errors map onto them.
 */
import type { TLSSocket } from 'node:tls';
import { isError, UnauthorizedError } from '../../errors/index.js';

export type Reason =
  | 'missing'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'untrusted'
  | 'revocation_unknown'
  | 'invalid'
  | 'malformed';

const MESSAGES: Readonly<Record<Reason, string>> = {
  missing: 'Client certificate required',
  expired: 'Client certificate has expired',
  not_yet_valid: 'Client certificate is not yet valid',
  revoked: 'Client certificate has been revoked',
  untrusted: 'Client certificate is not trusted',
  revocation_unknown: 'Client certificate revocation status could not be checked',
  invalid: 'Client certificate is not valid',
  malformed: 'Forwarded client certificate is malformed',
};

/** OpenSSL verification error codes (`socket.authorizationError`) → reason; others are `invalid`. */
export const TLS_ERRORS: Readonly<Record<string, Reason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',
  CERT_REVOKED: 'revoked',
  UNABLE_TO_GET_CRL: 'revocation_unknown',
  UNABLE_TO_GET_CRL_ISSUER: 'revocation_unknown',
  CRL_HAS_EXPIRED: 'revocation_unknown',
  CRL_NOT_YET_VALID: 'revocation_unknown',
  CRL_SIGNATURE_FAILURE: 'revocation_unknown',
  UNABLE_TO_DECRYPT_CRL_SIGNATURE: 'revocation_unknown',
  UNABLE_TO_GET_ISSUER_CERT: 'untrusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'untrusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'untrusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'untrusted',
  CERT_SIGNATURE_FAILURE: 'untrusted',
  CERT_UNTRUSTED: 'untrusted',
  CERT_REJECTED: 'untrusted',
  INVALID_CA: 'untrusted',
};

/** Node documents `authorizationError` as an Error but sets the OpenSSL code string. */
export function tlsErrorCode(socket: TLSSocket): string | undefined {
  const value: unknown = socket.authorizationError;
  if (typeof value === 'string') return value;
  return isError(value) ? ((value as { code?: string }).code ?? value.message) : undefined;
}

export function refusalError(reason: Reason): UnauthorizedError {
  return new UnauthorizedError(MESSAGES[reason], {
    code: reason === 'missing' ? 'CERTIFICATE_REQUIRED' : 'CERTIFICATE_INVALID',
  });
}
