/**
 * Knex migration: caduceus' audit trail table `audit_events`, its chain head `audit_events_head`
 * and the triggers that make both append-only (PostgreSQL, SQLite, MariaDB/MySQL). Copy this file
 * into your migrations directory, or add this folder to Knex's `migrations.directory` list.
 * `trail.migrate()` creates the same schema at start-up instead; both are idempotent.
 */
module.exports = require('caduceus').auditMigration({ table: 'audit_events' });
