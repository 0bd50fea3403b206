-- Thread TTL (checkpointer.ttl and a thread's own `ttl`), run priority, and the sweep claim table.
-- Same intent as postgres/migrations/0004_ttl_priority.sql.

-- A thread's TTL: what to do when it expires, its length, and when (epoch seconds) it expires.
ALTER TABLE graphyard_threads ADD COLUMN ttl_strategy TEXT;
ALTER TABLE graphyard_threads ADD COLUMN ttl_minutes REAL;
ALTER TABLE graphyard_threads ADD COLUMN expires_at REAL;
CREATE INDEX graphyard_threads_expires ON graphyard_threads (expires_at) WHERE expires_at IS NOT NULL;

-- The priority settings a project's @priority.assign gave the thread at its first run (NULL: not yet).
ALTER TABLE graphyard_threads ADD COLUMN priority INTEGER;
ALTER TABLE graphyard_threads ADD COLUMN fairness_group TEXT;

-- A run's place in the queue: lower runs first (-5 .. 5); every run of a thread has the thread's.
ALTER TABLE graphyard_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX graphyard_runs_priority_queue ON graphyard_runs (priority, available_at) WHERE status = 'pending';

-- One row per periodic sweep: a process runs a sweep only if it moved next_at on (once across processes).
CREATE TABLE graphyard_sweeps (
    name TEXT PRIMARY KEY,
    next_at REAL NOT NULL
);
