-- A thread's in-flight runs, found without walking its whole run history: run creation, finishing a run and
-- the claim's look for an earlier run on the thread cost the same on a thread's ten-thousandth run as on its first.
-- Same intent as postgres/migrations/0008_inflight_index.sql.
CREATE INDEX graphyard_runs_inflight ON graphyard_runs (thread_id, available_at)
WHERE status IN ('pending', 'running');
