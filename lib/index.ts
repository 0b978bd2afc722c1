// caduceus — the public API. Named exports only; nothing here runs at import time.
export * from './errors/index.js';
export type {
  Settings,
  Environment,
  JwtAlgorithm,
  LogLevel,
  DatabaseSettings,
  AuthSettings,
  ExternalServicesSettings,
  MonitoringSettings,
  SecuritySettings,
  DevelopmentSettings,
  VariableSpec,
} from './config/index.js';
export { loadSettings, SAMPLE_JWT_SECRET, VARIABLES } from './config/index.js';
export type { RequestContext, RequestContextOptions, TraceParent } from './context/index.js';
export {
  requestContext,
  getContext,
  getRequestId,
  setUser,
  runWithContext,
  bindContext,
  traceHeaders,
  createContext,
  parseTraceparent,
} from './context/index.js';
export type {
  Logger,
  LoggerOptions,
  FileTransportOptions,
  RedactOptions,
  Redactor,
  LoggingOptions,
  RequestLogFields,
  SecuritySeverity,
} from './logging/index.js';
export {
  createLogger,
  flushLogger,
  FileTransport,
  createRedactor,
  logging,
  logRequest,
  logError,
  logSecurityEvent,
} from './logging/index.js';
export type {
  MetricsOptions,
  MetricsMiddlewareOptions,
  MetricsEndpointOptions,
  PulledFamily,
  Reader,
  Emit,
  TracingOptions,
  Tracing,
} from './metrics/index.js';
export {
  Metrics,
  createMetrics,
  getMetrics,
  metrics,
  metricsEndpoint,
  DURATION_BUCKETS,
  SIZE_BUCKETS,
  startTracing,
} from './metrics/index.js';
// statusPage: the registry as a page for people (RED per route, errors, pools, breakers, limits, flags)
export type { StatusPageOptions } from './status/index.js';
export { statusPage } from './status/index.js';
export type { ErrorsOptions } from './error-handler/index.js';
export { errors, notFound, asyncHandler } from './error-handler/index.js';
export type { Database, DatabaseOptions, PoolStats, HealthStatus, Dialect } from './database/index.js';
export { createDatabase, database } from './database/index.js';
export type {
  RepositoryOptions,
  RepositoryAccess,
  RepositoryAuditOptions,
  RepositoryAuditSink,
  UpdateOptions,
  FilterOp,
  Scalar,
  FieldFilter,
  OrFilter,
  Filter,
  Filters,
  SortSpec,
  ListOptions,
  OffsetPage,
  KeysetPage,
  ColumnType,
  RepositoryAction,
  RepositoryEvent,
  ListQuerySchema,
} from './repository/index.js';
export { BaseRepository, parseListQuery, FILTER_OPS } from './repository/index.js';
export type {
  Auth,
  AuthOptions,
  AuthenticateOptions,
  PassportStrategy,
  RefreshOptions,
  RevokeOptions,
  AuthCounters,
  KeyOptions,
  RevocationStore,
  TokenClaims,
  TokenPair,
  IssueOptions,
  AuthUser,
  AuthEvent,
  AuthFailureReason,
  VerificationKey,
  RemoteJwksOptions,
  PasswordHashOptions,
  SelfOptions,
  MtlsOptions,
  MtlsCredentials,
  MtlsServer,
  MtlsServerOptions,
  MtlsForwardedOptions,
  ClientCertificate,
  CertificateIdentity,
  PemInput,
} from './auth/index.js';
export {
  createAuth,
  configureAuth,
  createTokens,
  refreshTokens,
  revokeToken,
  authenticate,
  jwks,
  AuthenticationFailure,
  requireRoles,
  requireAllRoles,
  requireScopes,
  requireAdmin,
  requireHealthcareProvider,
  requireSelfOrRoles,
  HEALTHCARE_PROVIDER_ROLES,
  hashPassword,
  verifyPassword,
  createMtlsServer,
  mtls,
  clientCertificate,
  clientCertificateThumbprint,
  certificateThumbprint,
} from './auth/index.js';
export type { RateLimitOptions, RateLimiter, RateLimitStats, KeyBy, FailMode } from './rate-limit/index.js';
export { rateLimit, loginRateLimit } from './rate-limit/index.js';
export type {
  SecurityOptions,
  SecurityMiddleware,
  ThreatOptions,
  CorsOptions,
  HelmetOptions,
  InputLimits,
  ParameterPollution,
  SecurityEvent,
  SecurityCounters,
  SecurityReason,
  SecurityAction,
  ThreatCategory,
  ThreatLocation,
} from './security/index.js';
export { security, API_HELMET_PRESET, DEFAULT_PERMISSIONS_POLICY } from './security/index.js';

// health
export type {
  HealthOptions,
  HealthRouter,
  HealthReport,
  HealthCheckResult,
  HealthCheckStatus,
  CheckDetails,
  HealthCheck,
  HealthDatabase,
  HealthBreaker,
  HealthFlags,
  FlagStoreStatus,
  GracefulShutdownOptions,
  GracefulShutdown,
  ShutdownServer,
  Closable,
} from './health/index.js';
export { health, gracefulShutdown } from './health/index.js';

// resilience
export type {
  CircuitBreaker,
  CircuitBreakerOptions,
  CircuitBreakerState,
  CircuitBreakerMode,
  CircuitBreakerEvent,
  CircuitBreakerStats,
  BreakerDecorator,
  CallResult,
  StateChange,
  RetryOptions,
  RetryEvent,
  TimeoutOptions,
  Bulkhead,
} from './resilience/index.js';
export {
  circuitBreaker,
  retry,
  retryWithBackoff,
  timeout,
  bulkhead,
  isDependencyFailure,
  isTransient,
} from './resilience/index.js';

// flags
export type {
  FeatureFlags,
  FeatureFlagsOptions,
  FlagDefinition,
  StoredFlagDefinition,
  FlagVariant,
  JsonValue,
  FlagContext,
  FlagContextInput,
  FlagEvaluation,
  FlagReason,
  FlagsStatus,
  AdminRouterOptions,
  RequestFlags,
  FlagsProvider,
  FlagResolution,
  OpenFeatureContext,
} from './flags/index.js';
export { featureFlags, configureFlags, getFeatureFlags, isFeatureEnabled } from './flags/index.js';

// audit
export type {
  AuditAction,
  AuditActorType,
  AuditDetails,
  AuditEvent,
  AuditEventInput,
  AuditEventsRouterOptions,
  AuditOptions,
  AuditOutcome,
  AuditPage,
  AuditQuery,
  AuditStats,
  VerifyOptions,
  VerifyResult,
} from './audit/index.js';
export {
  audit,
  AuditTrail,
  auditEventsRouter,
  auditMigration,
  toFhirAuditEvent,
  verifyAuditChain,
  AUDIT_ACTIONS,
  AUDIT_OUTCOMES,
} from './audit/index.js';

// defaults: the recommended front of the pipeline in one call
export type { DefaultsOptions, DefaultsChain } from './defaults/index.js';
export { defaults } from './defaults/index.js';
