-- name: insert_assistant
-- Create an assistant row; no row back means the id exists.
INSERT INTO graphyard_assistants (assistant_id, graph_id, config, context, metadata, name, description, version, created_at, updated_at)
VALUES (:assistant_id, :graph_id, :config, :context, :metadata, :name, :description, :version, :created_at, :updated_at)
ON CONFLICT (assistant_id) DO NOTHING
RETURNING assistant_id

-- name: insert_assistant_version
-- Record one version of an assistant.
INSERT INTO graphyard_assistant_versions (assistant_id, version, graph_id, config, context, metadata, name, description, created_at)
VALUES (:assistant_id, :version, :graph_id, :config, :context, :metadata, :name, :description, :updated_at)

-- name: get_assistant
-- One assistant, if the auth filter lets the caller see it; {auth} is the filter as a condition.
SELECT * FROM graphyard_assistants
WHERE assistant_id = :assistant_id AND {auth}

-- name: update_assistant
-- Overwrite an assistant's current fields.
UPDATE graphyard_assistants
SET graph_id = :graph_id, config = :config, context = :context, metadata = :metadata, name = :name,
    description = :description, version = :version, updated_at = :updated_at
WHERE assistant_id = :assistant_id

-- name: delete_assistant
-- Delete an assistant (versions cascade).
DELETE FROM graphyard_assistants WHERE assistant_id = :assistant_id

-- name: search_assistants
-- A page of assistants; {order} is chosen from a whitelist in code, {auth} is the filter as a condition.
SELECT * FROM graphyard_assistants
WHERE (:graph_id IS NULL OR graph_id = :graph_id)
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND (:name IS NULL OR instr(lower(name), lower(:name)) > 0)
  AND {auth}
ORDER BY {order}
LIMIT :limit OFFSET :offset

-- name: count_assistants
-- How many assistants match.
SELECT count(*) AS n FROM graphyard_assistants
WHERE (:graph_id IS NULL OR graph_id = :graph_id)
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND (:name IS NULL OR instr(lower(name), lower(:name)) > 0)
  AND {auth}

-- name: assistant_versions
-- Versions of an assistant, newest first.
SELECT * FROM graphyard_assistant_versions
WHERE assistant_id = :assistant_id AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
ORDER BY version DESC
LIMIT :limit OFFSET :offset

-- name: assistant_version
-- One version of an assistant.
SELECT * FROM graphyard_assistant_versions WHERE assistant_id = :assistant_id AND version = :version

-- name: insert_thread
-- Create a thread row; no row back means the id exists.
INSERT INTO graphyard_threads (thread_id, created_at, updated_at, state_updated_at, metadata, status, config, "values", interrupts, error)
VALUES (:thread_id, :created_at, :updated_at, :state_updated_at, :metadata, :status, :config, :values, :interrupts, :error)
ON CONFLICT (thread_id) DO NOTHING
RETURNING thread_id

-- name: get_thread
-- One thread, if the auth filter lets the caller see it; {auth} is the filter as a condition.
SELECT * FROM graphyard_threads
WHERE thread_id = :thread_id AND {auth}

-- name: get_thread_head
-- get_thread without the values (state reads need the thread's graph, not its copy of the state).
SELECT thread_id, created_at, updated_at, state_updated_at, metadata, status, config, NULL AS "values", interrupts, error
FROM graphyard_threads
WHERE thread_id = :thread_id AND {auth}

-- name: update_thread_metadata
-- Replace a thread's metadata.
UPDATE graphyard_threads SET metadata = :metadata, updated_at = :updated_at WHERE thread_id = :thread_id

-- name: set_thread_state
-- Record a thread's status and the state of its latest checkpoint.
UPDATE graphyard_threads
SET status = :status, "values" = :values, interrupts = :interrupts, error = :error,
    updated_at = :updated_at, state_updated_at = :updated_at
WHERE thread_id = :thread_id

-- name: set_thread_status
-- Change only a thread's status.
UPDATE graphyard_threads SET status = :status, updated_at = :updated_at WHERE thread_id = :thread_id

-- name: delete_thread
-- Delete a thread (runs cascade).
DELETE FROM graphyard_threads WHERE thread_id = :thread_id

-- name: search_threads
-- A page of threads; {order} is chosen from a whitelist in code, {auth} compiled from the filter,
-- :ids a JSON array (or NULL: any thread).
SELECT * FROM graphyard_threads
WHERE (:ids IS NULL OR thread_id IN (SELECT value FROM json_each(:ids)))
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND (:values IS NULL OR graphyard_contains("values", :values))
  AND (:status IS NULL OR status = :status)
  AND {auth}
ORDER BY {order}
LIMIT :limit OFFSET :offset

-- name: count_threads
-- How many threads match.
SELECT count(*) AS n FROM graphyard_threads
WHERE (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND (:values IS NULL OR graphyard_contains("values", :values))
  AND (:status IS NULL OR status = :status)
  AND {auth}

-- name: insert_run
-- Enqueue a run; no row back means the id exists.
INSERT INTO graphyard_runs (run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, kwargs,
                            multitask_strategy, available_at, attempt, temporary, priority)
VALUES (:run_id, :thread_id, :assistant_id, :created_at, :updated_at, :status, :metadata, :kwargs,
        :multitask_strategy, :available_at, :attempt, :temporary,
        coalesce((SELECT priority FROM graphyard_threads WHERE thread_id = :thread_id), 0))
ON CONFLICT (run_id) DO NOTHING
RETURNING run_id

-- name: get_run
-- One run, optionally only within a thread.
SELECT * FROM graphyard_runs WHERE run_id = :run_id AND (:thread_id IS NULL OR thread_id = :thread_id)

-- name: list_runs
-- A thread's runs, newest first.
SELECT * FROM graphyard_runs
WHERE thread_id = :thread_id AND (:status IS NULL OR status = :status)
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset

-- name: inflight_runs
-- A thread's pending and running runs, oldest first.
SELECT * FROM graphyard_runs
WHERE thread_id = :thread_id AND status IN ('pending', 'running')
ORDER BY available_at, rowid

-- name: delete_run
-- Delete one run row; a row back (deleted = 1) when it existed.
DELETE FROM graphyard_runs WHERE run_id = :run_id RETURNING 1 AS deleted

-- name: claim_run
-- Take the most urgent (lowest priority), then oldest runnable run: due, at the head of its thread's queue
-- (a priority assigned after a thread's first runs never lets a later run pass them), nothing running on its thread.
UPDATE graphyard_runs
SET status = 'running', lease_owner = :worker_id, lease_expires_at = :lease_expires_at,
    attempt = attempt + 1, updated_at = :updated_at
WHERE run_id = (
    SELECT r.run_id FROM graphyard_runs AS r
    WHERE r.status = 'pending' AND r.available_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM graphyard_runs AS o
          WHERE o.thread_id = r.thread_id
            AND (o.status = 'running'
                 OR (o.status = 'pending' AND (o.available_at, o.rowid) < (r.available_at, r.rowid)))
      )
    ORDER BY r.priority, r.available_at, r.rowid
    LIMIT 1
)
RETURNING *

-- name: next_available_at
-- When the next pending run that is not waiting behind a running run becomes due.
SELECT min(r.available_at) AS at FROM graphyard_runs AS r
WHERE r.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM graphyard_runs AS o WHERE o.thread_id = r.thread_id AND o.status = 'running')

-- name: finish_run
-- A run's terminal status and join output.
UPDATE graphyard_runs
SET status = :status, output = :output, updated_at = :updated_at, lease_owner = NULL, lease_expires_at = NULL
WHERE run_id = :run_id

-- name: request_cancel
-- Ask the worker holding a run to stop it.
UPDATE graphyard_runs SET cancel_action = :action, updated_at = :updated_at WHERE run_id = :run_id

-- name: stop_pending_run
-- Interrupt a run that has not started; no row back when a worker claimed it first.
UPDATE graphyard_runs
SET status = 'interrupted', updated_at = :updated_at, lease_owner = NULL, lease_expires_at = NULL
WHERE run_id = :run_id AND status = 'pending'
RETURNING 1 AS stopped

-- name: delete_pending_run
-- Roll back a run that has not started; no row back when a worker claimed it first.
DELETE FROM graphyard_runs WHERE run_id = :run_id AND status = 'pending' RETURNING 1 AS stopped

-- name: requeue_run
-- Put a running run back in the queue.
UPDATE graphyard_runs
SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = :updated_at
WHERE run_id = :run_id AND status = 'running'

-- name: end_stalled_sessions
-- One process owns the file: there is no other session to end.
SELECT 0 AS ended

-- name: expired_leases
-- Running runs whose worker stopped renewing its lease (the caller's BEGIN IMMEDIATE holds them).
SELECT * FROM graphyard_runs WHERE status = 'running' AND lease_expires_at < :now

-- name: hold_lease
-- The run's row if the lease is still current (the write lock of the caller's transaction holds it).
SELECT run_id FROM graphyard_runs
WHERE run_id = :run_id AND lease_owner = :owner AND attempt = :attempt AND status = 'running'

-- name: transfer_lease
-- Hand a running run's current lease (same attempt) to another owner.
UPDATE graphyard_runs SET lease_owner = :new_owner, lease_expires_at = :lease_expires_at
WHERE run_id = :run_id AND lease_owner = :owner AND attempt = :attempt AND status = 'running'
RETURNING run_id

-- name: cancellable_runs
-- In-flight runs selected by thread and ids, or by status; :ids a JSON array (or NULL: any run).
SELECT * FROM graphyard_runs
WHERE status IN ('pending', 'running')
  AND (:thread_id IS NULL OR thread_id = :thread_id)
  AND (:ids IS NULL OR run_id IN (SELECT value FROM json_each(:ids)))
  AND (:status IS NULL OR :status = 'all' OR status = :status)
ORDER BY available_at, rowid

-- name: delete_run_checkpoint_writes
-- Pending writes of the checkpoints a run created (LangGraph's saver table).
DELETE FROM writes
WHERE thread_id = :thread_id AND checkpoint_id IN (
    SELECT checkpoint_id FROM checkpoints
    WHERE thread_id = :thread_id AND json_extract(CAST(metadata AS TEXT), '$.run_id') = :run_id
)

-- name: delete_run_checkpoints
-- The checkpoints a run created (LangGraph's saver table), for rollback.
DELETE FROM checkpoints
WHERE thread_id = :thread_id AND json_extract(CAST(metadata AS TEXT), '$.run_id') = :run_id

-- name: running_runs
-- Every running run (recovery at startup of the only process on this file).
SELECT * FROM graphyard_runs WHERE status = 'running' ORDER BY available_at, rowid

-- name: renew_leases
-- Extend the leases a worker holds.
UPDATE graphyard_runs SET lease_expires_at = :lease_expires_at
WHERE lease_owner = :worker_id AND status = 'running'
RETURNING run_id, lease_owner, attempt

-- name: cancel_requests
-- Runs a worker holds that were asked to stop.
SELECT run_id, cancel_action FROM graphyard_runs
WHERE lease_owner = :worker_id AND status = 'running' AND cancel_action IS NOT NULL

-- name: insert_cron
-- Create a cron row; no row back means the id exists.
INSERT INTO graphyard_crons (cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, payload, metadata, on_run_completed, enabled, next_run_date, created_at, updated_at)
VALUES (:cron_id, :assistant_id, :thread_id, :user_id, :schedule, :timezone, :end_time, :payload, :metadata, :on_run_completed, :enabled, :next_run_date, :created_at, :updated_at)
ON CONFLICT (cron_id) DO NOTHING
RETURNING cron_id

-- name: get_cron
-- One cron, if the auth filter lets the caller see it; {auth} is the filter as a condition.
SELECT * FROM graphyard_crons
WHERE cron_id = :cron_id AND {auth}

-- name: update_cron
-- Overwrite a cron's changeable fields.
UPDATE graphyard_crons
SET schedule = :schedule, timezone = :timezone, end_time = :end_time, payload = :payload, metadata = :metadata,
    on_run_completed = :on_run_completed, enabled = :enabled, next_run_date = :next_run_date, updated_at = :updated_at
WHERE cron_id = :cron_id

-- name: delete_cron
-- Delete a cron (its fires cascade), if the auth filter lets the caller see it.
DELETE FROM graphyard_crons
WHERE cron_id = :cron_id AND {auth}

-- name: search_crons
-- A page of crons; {order} is chosen from a whitelist in code, {auth} is the filter as a condition.
SELECT * FROM graphyard_crons
WHERE (:assistant_id IS NULL OR assistant_id = :assistant_id)
  AND (:thread_id IS NULL OR thread_id = :thread_id)
  AND (:enabled IS NULL OR enabled = :enabled)
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND {auth}
ORDER BY {order}
LIMIT :limit OFFSET :offset

-- name: count_crons
-- How many crons match.
SELECT count(*) AS n FROM graphyard_crons
WHERE (:assistant_id IS NULL OR assistant_id = :assistant_id)
  AND (:thread_id IS NULL OR thread_id = :thread_id)
  AND (:metadata IS NULL OR graphyard_contains(metadata, :metadata))
  AND {auth}

-- name: due_crons
-- Enabled crons whose next run is due and whose end time (if any) has not passed, earliest first.
SELECT * FROM graphyard_crons
WHERE enabled = 1 AND next_run_date IS NOT NULL AND next_run_date <= :now
  AND (end_time IS NULL OR end_time >= :now)
ORDER BY next_run_date, rowid
LIMIT :limit

-- name: insert_cron_fire
-- Claim one occurrence of a cron; no row back means another worker fired it.
INSERT INTO graphyard_cron_fires (cron_id, scheduled_at, fired_at)
VALUES (:cron_id, :scheduled_at, :fired_at)
ON CONFLICT (cron_id, scheduled_at) DO NOTHING
RETURNING cron_id

-- name: advance_cron
-- Move a cron's next run on after firing the occurrence it was due at.
UPDATE graphyard_crons SET next_run_date = :next_run_date
WHERE cron_id = :cron_id AND next_run_date = :scheduled_at

-- name: prune_cron_fires
-- Forget a cron's fires older than the given time (their occurrences are long past).
DELETE FROM graphyard_cron_fires WHERE cron_id = :cron_id AND scheduled_at < :before

-- name: run_status_counts
-- How many runs are in each status (operators and /metrics).
SELECT status, count(*) AS n FROM graphyard_runs GROUP BY status

-- name: queue_counts
-- Pending runs due now and delayed; the oldest due run; running runs whose lease expired.
SELECT
    sum(CASE WHEN status = 'pending' AND available_at <= :now THEN 1 ELSE 0 END) AS due,
    sum(CASE WHEN status = 'pending' AND available_at > :now THEN 1 ELSE 0 END) AS delayed,
    min(CASE WHEN status = 'pending' AND available_at <= :now THEN available_at END) AS oldest_due_at,
    sum(CASE WHEN status = 'running' AND lease_expires_at < :now THEN 1 ELSE 0 END) AS expired
FROM graphyard_runs WHERE status IN ('pending', 'running')

-- name: running_by_worker
-- Running runs per lease owner.
SELECT coalesce(lease_owner, '') AS worker, count(*) AS n
FROM graphyard_runs WHERE status = 'running' GROUP BY lease_owner

-- name: leased_runs
-- Runs of any thread with their leases, oldest first (operators' `runs list`).
SELECT * FROM graphyard_runs
WHERE (:status IS NULL OR status = :status)
  AND (:thread_id IS NULL OR thread_id = :thread_id)
  AND (:created_before IS NULL OR created_at < :created_before)
ORDER BY created_at, rowid
LIMIT :limit

-- name: leased_run
-- One run with its lease.
SELECT * FROM graphyard_runs WHERE run_id = :run_id

-- name: set_thread_ttl
-- A thread's TTL strategy and length, and when it expires (NULLs: it never does).
UPDATE graphyard_threads SET ttl_strategy = :strategy, ttl_minutes = :minutes, expires_at = :expires_at
WHERE thread_id = :thread_id

-- name: thread_ttl
-- A thread's TTL, if it has one.
SELECT ttl_strategy, ttl_minutes, expires_at FROM graphyard_threads
WHERE thread_id = :thread_id AND expires_at IS NOT NULL

-- name: claim_sweep
-- Take the sweep `name` if it is due, moving its next time on; no row back: not due, or someone else took it.
INSERT INTO graphyard_sweeps (name, next_at) VALUES (:name, :next_at)
ON CONFLICT (name) DO UPDATE SET next_at = excluded.next_at WHERE graphyard_sweeps.next_at <= :now
RETURNING name

-- name: expired_threads
-- Threads past their TTL and orphaned temporary threads (stateless runs' leftovers), none with a run in flight.
SELECT t.thread_id, t.ttl_strategy, t.ttl_minutes FROM graphyard_threads AS t
WHERE (t.expires_at <= :now
       OR EXISTS (SELECT 1 FROM graphyard_runs AS r WHERE r.thread_id = t.thread_id AND r.temporary = 1))
  AND NOT EXISTS (
      SELECT 1 FROM graphyard_runs AS r WHERE r.thread_id = t.thread_id AND r.status IN ('pending', 'running')
  )
ORDER BY t.expires_at
LIMIT :limit

-- name: thread_priority
-- The priority settings assigned to a thread; priority is NULL until its first run assigned them.
SELECT priority, fairness_group FROM graphyard_threads WHERE thread_id = :thread_id

-- name: set_thread_priority
-- Record the priority settings of a thread (its runs inherit the priority when enqueued).
UPDATE graphyard_threads SET priority = :priority, fairness_group = :fairness_group WHERE thread_id = :thread_id
