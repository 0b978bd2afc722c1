/**
 * Mutual TLS: an https server that asks for client certificates, and `mtls()`, the middleware that
 * admits only verified ones and turns them into a service identity (`req.user`, `via: 'certificate'`).
 * A certificate may also arrive from a trusted TLS-terminating proxy in a header (nginx, Envoy XFCC).
 */
export type { CertificateIdentity, ClientCertificate, PemInput } from './certificate.js';
export { certificateThumbprint, clientCertificate, clientCertificateThumbprint } from './certificate.js';
export type { MtlsForwardedOptions } from './forwarded.js';
export type { MtlsOptions } from './middleware.js';
export { mtls } from './middleware.js';
export type { MtlsCredentials, MtlsServer, MtlsServerOptions } from './server.js';
export { createMtlsServer } from './server.js';
