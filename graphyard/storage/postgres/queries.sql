-- name: migrations_table
-- The migration runner's bookkeeping table.
CREATE TABLE IF NOT EXISTS graphyard_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
-- Versions already applied.
SELECT version FROM graphyard_migrations

-- name: record_migration
-- Record one applied migration (in the same transaction as the migration itself).
INSERT INTO graphyard_migrations (version, name) VALUES (%(version)s, %(name)s)

-- name: try_migration_lock
-- The cross-process migration lock; a session lock held on a dedicated connection.
SELECT pg_try_advisory_lock(%(key)s) AS locked

-- name: migration_unlock
-- Release the migration lock.
SELECT pg_advisory_unlock(%(key)s) AS unlocked

-- name: ping
-- Is the database there?
SELECT 1

-- name: begin
-- Open a write transaction (PostgresStorage.transaction, pipelined with the first statement).
BEGIN

-- name: commit
-- Commit it (pipelined with the last writes).
COMMIT

-- name: rollback
-- Roll it back.
ROLLBACK

-- name: listen
-- Subscribe the listener connection to run wake-ups.
LISTEN graphyard_runs

-- name: insert_assistant
-- Create an assistant row; no row back means the id exists.
INSERT INTO graphyard_assistants (assistant_id, graph_id, config, context, metadata, name, description, version, created_at, updated_at)
VALUES (%(assistant_id)s, %(graph_id)s, %(config)s::jsonb, %(context)s::jsonb, %(metadata)s::jsonb, %(name)s,
        %(description)s, %(version)s, %(created_at)s, %(updated_at)s)
ON CONFLICT (assistant_id) DO NOTHING
RETURNING assistant_id

-- name: insert_assistant_version
-- Record one version of an assistant.
INSERT INTO graphyard_assistant_versions (assistant_id, version, graph_id, config, context, metadata, name, description, created_at)
VALUES (%(assistant_id)s, %(version)s, %(graph_id)s, %(config)s::jsonb, %(context)s::jsonb, %(metadata)s::jsonb,
        %(name)s, %(description)s, %(updated_at)s)

-- name: get_assistant
-- One assistant, if the auth filter lets the caller see it; {auth} is compiled from the filter.
SELECT * FROM graphyard_assistants WHERE assistant_id = %(assistant_id)s AND {auth}

-- name: update_assistant
-- Overwrite an assistant's current fields.
UPDATE graphyard_assistants
SET graph_id = %(graph_id)s, config = %(config)s::jsonb, context = %(context)s::jsonb, metadata = %(metadata)s::jsonb,
    name = %(name)s, description = %(description)s, version = %(version)s, updated_at = %(updated_at)s
WHERE assistant_id = %(assistant_id)s

-- name: delete_assistant
-- Delete an assistant (versions cascade).
DELETE FROM graphyard_assistants WHERE assistant_id = %(assistant_id)s

-- name: search_assistants
-- A page of assistants; {order} is chosen from a whitelist in code, {auth} compiled from the filter.
SELECT * FROM graphyard_assistants
WHERE (%(graph_id)s::text IS NULL OR graph_id = %(graph_id)s)
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND (%(name)s::text IS NULL OR strpos(lower(name), lower(%(name)s)) > 0)
  AND {auth}
ORDER BY {order}
LIMIT %(limit)s OFFSET %(offset)s

-- name: count_assistants
-- How many assistants match.
SELECT count(*) AS n FROM graphyard_assistants
WHERE (%(graph_id)s::text IS NULL OR graph_id = %(graph_id)s)
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND (%(name)s::text IS NULL OR strpos(lower(name), lower(%(name)s)) > 0)
  AND {auth}

-- name: assistant_versions
-- Versions of an assistant, newest first.
SELECT * FROM graphyard_assistant_versions
WHERE assistant_id = %(assistant_id)s AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
ORDER BY version DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: assistant_version
-- One version of an assistant.
SELECT * FROM graphyard_assistant_versions WHERE assistant_id = %(assistant_id)s AND version = %(version)s

-- name: insert_thread
-- Create a thread row; no row back means the id exists.
INSERT INTO graphyard_threads (thread_id, created_at, updated_at, state_updated_at, metadata, status, config, "values", interrupts, error)
VALUES (%(thread_id)s, %(created_at)s, %(updated_at)s, %(state_updated_at)s, %(metadata)s::jsonb, %(status)s,
        %(config)s::jsonb, %(values)s::jsonb, %(interrupts)s::jsonb, %(error)s::jsonb)
ON CONFLICT (thread_id) DO NOTHING
RETURNING thread_id

-- name: get_thread
-- One thread, if the auth filter lets the caller see it; {auth} is compiled from the filter.
SELECT * FROM graphyard_threads WHERE thread_id = %(thread_id)s AND {auth}

-- name: get_thread_head
-- get_thread without the values (state reads need the thread's graph, not its copy of the state).
SELECT thread_id, created_at, updated_at, state_updated_at, metadata, status, config, NULL AS "values", interrupts, error
FROM graphyard_threads WHERE thread_id = %(thread_id)s AND {auth}

-- name: update_thread_metadata
-- Replace a thread's metadata.
UPDATE graphyard_threads SET metadata = %(metadata)s::jsonb, updated_at = %(updated_at)s WHERE thread_id = %(thread_id)s

-- name: set_thread_state
-- Record a thread's status and the state of its latest checkpoint.
UPDATE graphyard_threads
SET status = %(status)s, "values" = %(values)s::jsonb, interrupts = %(interrupts)s::jsonb, error = %(error)s::jsonb,
    updated_at = %(updated_at)s, state_updated_at = %(updated_at)s
WHERE thread_id = %(thread_id)s

-- name: set_thread_status
-- Change only a thread's status.
UPDATE graphyard_threads SET status = %(status)s, updated_at = %(updated_at)s WHERE thread_id = %(thread_id)s

-- name: delete_thread
-- Delete a thread (runs cascade).
DELETE FROM graphyard_threads WHERE thread_id = %(thread_id)s

-- name: search_threads
-- A page of threads; {order} is chosen from a whitelist in code, {auth} compiled from the filter.
SELECT * FROM graphyard_threads
WHERE (%(ids)s::text[] IS NULL OR thread_id = ANY(%(ids)s::text[]))
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND (%(values)s::jsonb IS NULL OR "values" @> %(values)s::jsonb)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND {auth}
ORDER BY {order}
LIMIT %(limit)s OFFSET %(offset)s

-- name: count_threads
-- How many threads match.
SELECT count(*) AS n FROM graphyard_threads
WHERE (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND (%(values)s::jsonb IS NULL OR "values" @> %(values)s::jsonb)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND {auth}

-- name: insert_run
-- Enqueue a run and wake workers everywhere (NOTIFY is delivered at commit); no row back means the id exists.
WITH inserted AS (
    INSERT INTO graphyard_runs (run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, kwargs,
                                multitask_strategy, available_at, attempt, temporary, priority)
    VALUES (%(run_id)s, %(thread_id)s, %(assistant_id)s, %(created_at)s, %(updated_at)s, %(status)s,
            %(metadata)s::jsonb, %(kwargs)s::jsonb, %(multitask_strategy)s, %(available_at)s, %(attempt)s, %(temporary)s,
            coalesce((SELECT priority FROM graphyard_threads WHERE thread_id = %(thread_id)s), 0))
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id
)
SELECT run_id, pg_notify('graphyard_runs', %(origin)s) AS notified FROM inserted

-- name: get_run
-- One run, optionally only within a thread.
SELECT * FROM graphyard_runs WHERE run_id = %(run_id)s AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)

-- name: list_runs
-- A thread's runs, newest first.
SELECT * FROM graphyard_runs
WHERE thread_id = %(thread_id)s AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
ORDER BY created_at DESC, seq DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: inflight_runs
-- A thread's pending and running runs, oldest first.
SELECT * FROM graphyard_runs
WHERE thread_id = %(thread_id)s AND status IN ('pending', 'running')
ORDER BY available_at, seq

-- name: delete_run
-- Delete one run row; if it held its thread, wake workers for the thread's next pending run.
WITH deleted AS (
    DELETE FROM graphyard_runs WHERE run_id = %(run_id)s RETURNING thread_id, status
), woken AS (
    SELECT pg_notify('graphyard_runs', %(origin)s) FROM deleted AS d
    WHERE d.status = 'running'
      AND EXISTS (SELECT 1 FROM graphyard_runs AS p WHERE p.thread_id = d.thread_id AND p.status = 'pending')
)
SELECT (SELECT count(*) FROM deleted) AS deleted, (SELECT count(*) FROM woken) AS woken

-- name: claim_run
-- Take the most urgent runnable run (migration 0006 says which and how): one statement, one round trip,
-- retried inside the database when a concurrent claimer started a run on the same thread first.
SELECT * FROM graphyard_claim_run(%(worker_id)s, %(now)s, %(lease_expires_at)s, %(updated_at)s, 5)

-- name: next_available_at
-- When the next pending run that is not waiting behind a running run becomes due.
SELECT min(r.available_at) AS at FROM graphyard_runs AS r
WHERE r.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM graphyard_runs AS o WHERE o.thread_id = r.thread_id AND o.status = 'running')

-- name: finish_run
-- A run's terminal status and join output; wake workers if the thread has a run waiting behind it.
WITH finished AS (
    UPDATE graphyard_runs
    SET status = %(status)s, output = %(output)s::jsonb, updated_at = %(updated_at)s,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE run_id = %(run_id)s
    RETURNING thread_id
)
SELECT pg_notify('graphyard_runs', %(origin)s) AS notified FROM finished AS f
WHERE EXISTS (SELECT 1 FROM graphyard_runs AS p WHERE p.thread_id = f.thread_id AND p.status = 'pending')

-- name: stop_pending_run
-- Interrupt a run that has not started; no row back when a worker claimed it first (the row lock makes a
-- concurrent claim skip it, or makes us wait for the claim and then see it running). Wake workers for the
-- thread's next pending run.
WITH stopped AS (
    UPDATE graphyard_runs
    SET status = 'interrupted', updated_at = %(updated_at)s, lease_owner = NULL, lease_expires_at = NULL
    WHERE run_id = %(run_id)s AND status = 'pending'
    RETURNING thread_id
), woken AS (
    SELECT pg_notify('graphyard_runs', %(origin)s) FROM stopped AS s
    WHERE EXISTS (SELECT 1 FROM graphyard_runs AS p WHERE p.thread_id = s.thread_id AND p.status = 'pending')
)
SELECT 1 AS stopped, (SELECT count(*) FROM woken) AS woken FROM stopped

-- name: delete_pending_run
-- Roll back a run that has not started; no row back when a worker claimed it first.
WITH deleted AS (
    DELETE FROM graphyard_runs WHERE run_id = %(run_id)s AND status = 'pending' RETURNING thread_id
), woken AS (
    SELECT pg_notify('graphyard_runs', %(origin)s) FROM deleted AS d
    WHERE EXISTS (SELECT 1 FROM graphyard_runs AS p WHERE p.thread_id = d.thread_id AND p.status = 'pending')
)
SELECT 1 AS stopped, (SELECT count(*) FROM woken) AS woken FROM deleted

-- name: request_cancel
-- Ask the worker holding a run to stop it.
UPDATE graphyard_runs SET cancel_action = %(action)s, updated_at = %(updated_at)s WHERE run_id = %(run_id)s

-- name: requeue_run
-- Put a running run back in the queue and wake workers everywhere (NOTIFY is delivered at commit).
WITH requeued AS (
    UPDATE graphyard_runs
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = %(updated_at)s
    WHERE run_id = %(run_id)s AND status = 'running'
    RETURNING run_id
)
SELECT pg_notify('graphyard_runs', %(origin)s) AS notified FROM requeued

-- name: end_stalled_sessions
-- Sessions of our role on our database that have waited for their client in the middle of a pipeline
-- (active, reading from the client, no Sync yet) for longer than the timeout, holding locks on runs.
SELECT count(pg_terminate_backend(a.pid)) AS ended
FROM pg_stat_activity AS a
WHERE a.datname = current_database() AND a.usename = current_user AND a.pid <> pg_backend_pid()
  AND a.state = 'active' AND a.wait_event = 'ClientRead'
  AND a.state_change < now() - make_interval(secs => %(seconds)s)
  AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = a.pid AND l.relation = 'graphyard_runs'::regclass)

-- name: expired_leases
-- Running runs whose worker stopped renewing its lease, locked for the caller's transaction: a renewal
-- racing the sweep waits, then finds the run requeued; a row another sweeper (or a fenced write) holds is skipped.
SELECT * FROM graphyard_runs WHERE status = 'running' AND lease_expires_at < %(now)s
ORDER BY available_at, seq
FOR UPDATE SKIP LOCKED

-- name: hold_lease
-- The run's row if the lease is still current, share-locked until commit (a takeover waits for us).
SELECT run_id FROM graphyard_runs
WHERE run_id = %(run_id)s AND lease_owner = %(owner)s AND attempt = %(attempt)s AND status = 'running'
FOR SHARE

-- name: hold_lease_or_raise
-- hold_lease as one statement whose answer need not be read: SQLSTATE GYL01 when the lease is gone
-- (migrations/0007), so a fenced write can pipeline it with its writes; with flush false, the
-- transaction's commit does not wait for the WAL flush.
SELECT graphyard_hold_lease(%(run_id)s, %(owner)s, %(attempt)s, %(flush)s)

-- name: transfer_lease
-- Hand a running run's current lease (same attempt) to another owner.
UPDATE graphyard_runs SET lease_owner = %(new_owner)s, lease_expires_at = %(lease_expires_at)s
WHERE run_id = %(run_id)s AND lease_owner = %(owner)s AND attempt = %(attempt)s AND status = 'running'
RETURNING run_id

-- name: cancellable_runs
-- In-flight runs selected by thread and ids, or by status.
SELECT * FROM graphyard_runs
WHERE status IN ('pending', 'running')
  AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(ids)s::text[] IS NULL OR run_id = ANY(%(ids)s::text[]))
  AND (%(status)s::text IS NULL OR %(status)s = 'all' OR status = %(status)s)
ORDER BY available_at, seq

-- name: delete_run_checkpoint_writes
-- Pending writes of the checkpoints a run created (LangGraph's saver table); blobs are shared, kept.
DELETE FROM checkpoint_writes AS w
USING checkpoints AS c
WHERE w.thread_id = %(thread_id)s AND c.thread_id = %(thread_id)s
  AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id
  AND c.metadata ->> 'run_id' = %(run_id)s

-- name: delete_run_checkpoints
-- The checkpoints a run created (LangGraph's saver table), for rollback.
DELETE FROM checkpoints WHERE thread_id = %(thread_id)s AND metadata ->> 'run_id' = %(run_id)s

-- name: running_runs
-- Every running run (recovery when this process is the only one on the database).
SELECT * FROM graphyard_runs WHERE status = 'running' ORDER BY available_at, seq

-- name: renew_leases
-- Extend the leases a worker holds.
UPDATE graphyard_runs SET lease_expires_at = %(lease_expires_at)s
WHERE lease_owner = %(worker_id)s AND status = 'running'
RETURNING run_id, lease_owner, attempt

-- name: cancel_requests
-- Runs a worker holds that were asked to stop.
SELECT run_id, cancel_action FROM graphyard_runs
WHERE lease_owner = %(worker_id)s AND status = 'running' AND cancel_action IS NOT NULL

-- name: insert_cron
-- Create a cron row; no row back means the id exists.
INSERT INTO graphyard_crons (cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, payload, metadata, on_run_completed, enabled, next_run_date, created_at, updated_at)
VALUES (%(cron_id)s, %(assistant_id)s, %(thread_id)s, %(user_id)s, %(schedule)s, %(timezone)s, %(end_time)s,
        %(payload)s::jsonb, %(metadata)s::jsonb, %(on_run_completed)s, %(enabled)s, %(next_run_date)s, %(created_at)s, %(updated_at)s)
ON CONFLICT (cron_id) DO NOTHING
RETURNING cron_id

-- name: get_cron
-- One cron, if the auth filter lets the caller see it; {auth} is compiled from the filter.
SELECT * FROM graphyard_crons WHERE cron_id = %(cron_id)s AND {auth}

-- name: update_cron
-- Overwrite a cron's changeable fields.
UPDATE graphyard_crons
SET schedule = %(schedule)s, timezone = %(timezone)s, end_time = %(end_time)s, payload = %(payload)s::jsonb,
    metadata = %(metadata)s::jsonb, on_run_completed = %(on_run_completed)s, enabled = %(enabled)s,
    next_run_date = %(next_run_date)s, updated_at = %(updated_at)s
WHERE cron_id = %(cron_id)s

-- name: delete_cron
-- Delete a cron (its fires cascade), if the auth filter lets the caller see it.
DELETE FROM graphyard_crons WHERE cron_id = %(cron_id)s AND {auth}

-- name: search_crons
-- A page of crons; {order} is chosen from a whitelist in code, {auth} compiled from the filter.
SELECT * FROM graphyard_crons
WHERE (%(assistant_id)s::text IS NULL OR assistant_id = %(assistant_id)s)
  AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(enabled)s::boolean IS NULL OR enabled = %(enabled)s)
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND {auth}
ORDER BY {order}
LIMIT %(limit)s OFFSET %(offset)s

-- name: count_crons
-- How many crons match.
SELECT count(*) AS n FROM graphyard_crons
WHERE (%(assistant_id)s::text IS NULL OR assistant_id = %(assistant_id)s)
  AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s::jsonb)
  AND {auth}

-- name: due_crons
-- Enabled crons whose next run is due and whose end time (if any) has not passed, earliest first.
SELECT * FROM graphyard_crons
WHERE enabled AND next_run_date IS NOT NULL AND next_run_date <= %(now)s
  AND (end_time IS NULL OR end_time >= %(now)s)
ORDER BY next_run_date, seq
LIMIT %(limit)s

-- name: insert_cron_fire
-- Claim one occurrence of a cron; no row back means another worker fired it. A concurrent claim
-- of the same key waits for the first to commit, then gets no row.
INSERT INTO graphyard_cron_fires (cron_id, scheduled_at, fired_at)
VALUES (%(cron_id)s, %(scheduled_at)s, %(fired_at)s)
ON CONFLICT (cron_id, scheduled_at) DO NOTHING
RETURNING cron_id

-- name: advance_cron
-- Move a cron's next run on after firing the occurrence it was due at.
UPDATE graphyard_crons SET next_run_date = %(next_run_date)s
WHERE cron_id = %(cron_id)s AND next_run_date = %(scheduled_at)s

-- name: prune_cron_fires
-- Forget a cron's fires older than the given time (their occurrences are long past).
DELETE FROM graphyard_cron_fires WHERE cron_id = %(cron_id)s AND scheduled_at < %(before)s

-- name: run_status_counts
-- How many runs are in each status (operators and /metrics).
SELECT status, count(*) AS n FROM graphyard_runs GROUP BY status

-- name: queue_counts
-- Pending runs due now and delayed; the oldest due run; running runs whose lease expired.
SELECT
    count(*) FILTER (WHERE status = 'pending' AND available_at <= %(now)s) AS due,
    count(*) FILTER (WHERE status = 'pending' AND available_at > %(now)s) AS delayed,
    min(available_at) FILTER (WHERE status = 'pending' AND available_at <= %(now)s) AS oldest_due_at,
    count(*) FILTER (WHERE status = 'running' AND lease_expires_at < %(now)s) AS expired
FROM graphyard_runs WHERE status IN ('pending', 'running')

-- name: running_by_worker
-- Running runs per lease owner.
SELECT coalesce(lease_owner, '') AS worker, count(*) AS n
FROM graphyard_runs WHERE status = 'running' GROUP BY lease_owner

-- name: leased_runs
-- Runs of any thread with their leases, oldest first (operators' `runs list`).
SELECT * FROM graphyard_runs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(created_before)s::text IS NULL OR created_at < %(created_before)s)
ORDER BY created_at, seq
LIMIT %(limit)s

-- name: leased_run
-- One run with its lease.
SELECT * FROM graphyard_runs WHERE run_id = %(run_id)s

-- name: set_thread_ttl
-- A thread's TTL strategy and length, and when it expires (NULLs: it never does).
UPDATE graphyard_threads SET ttl_strategy = %(strategy)s, ttl_minutes = %(minutes)s, expires_at = %(expires_at)s
WHERE thread_id = %(thread_id)s

-- name: thread_ttl
-- A thread's TTL, if it has one.
SELECT ttl_strategy, ttl_minutes, expires_at FROM graphyard_threads
WHERE thread_id = %(thread_id)s AND expires_at IS NOT NULL

-- name: claim_sweep
-- Take the sweep `name` if it is due, moving its next time on; no row back: not due, or someone else took it
-- (a concurrent claimer waits on the row lock, then sees the moved next_at and takes nothing).
INSERT INTO graphyard_sweeps (name, next_at) VALUES (%(name)s, %(next_at)s)
ON CONFLICT (name) DO UPDATE SET next_at = excluded.next_at WHERE graphyard_sweeps.next_at <= %(now)s
RETURNING name

-- name: expired_threads
-- Threads past their TTL and orphaned temporary threads (stateless runs' leftovers), none with a run in flight;
-- locked so a run being created on one waits for the sweep's verdict.
SELECT t.thread_id, t.ttl_strategy, t.ttl_minutes FROM graphyard_threads AS t
WHERE (t.expires_at <= %(now)s
       OR EXISTS (SELECT 1 FROM graphyard_runs AS r WHERE r.thread_id = t.thread_id AND r.temporary))
  AND NOT EXISTS (
      SELECT 1 FROM graphyard_runs AS r WHERE r.thread_id = t.thread_id AND r.status IN ('pending', 'running')
  )
ORDER BY t.expires_at
LIMIT %(limit)s
FOR UPDATE OF t SKIP LOCKED

-- name: thread_priority
-- The priority settings assigned to a thread; priority is NULL until its first run assigned them.
SELECT priority, fairness_group FROM graphyard_threads WHERE thread_id = %(thread_id)s

-- name: set_thread_priority
-- Record the priority settings of a thread (its runs inherit the priority when enqueued).
UPDATE graphyard_threads SET priority = %(priority)s, fairness_group = %(fairness_group)s
WHERE thread_id = %(thread_id)s

-- name: vector_extension
-- Whether this server can create the pgvector extension (store.index needs it).
SELECT name FROM pg_available_extensions WHERE name = 'vector'
