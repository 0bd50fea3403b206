-- Holding a run's lease without reading an answer. Same number as sqlite/migrations/0007_hold_lease_function.sql
-- (a no-op there).
--
-- Share-locks the run's row if the lease (owner, attempt) is still current and raises SQLSTATE GYL01
-- otherwise. Because a lost lease is an error rather than an empty result, a fenced checkpoint write sends
-- this check and its writes in one pipeline, one implicit transaction up to the Sync: when the check fails,
-- PostgreSQL skips the writes and rolls the transaction back, so nothing lands, and the client learns it
-- from the error (storage.errors.LeaseLost) instead of waiting for the check's answer before sending the
-- writes. With flush false, the transaction's commit does not wait for its WAL to reach the disk
-- (storage/postgres/saver.py says when that is safe).
CREATE FUNCTION graphyard_hold_lease(held_run_id text, held_owner text, held_attempt integer, flush boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM graphyard_runs
    WHERE run_id = held_run_id AND lease_owner = held_owner AND attempt = held_attempt AND status = 'running'
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run %: attempt % of % no longer holds its lease', held_run_id, held_attempt, held_owner
            USING ERRCODE = 'GYL01';
    END IF;
    IF NOT flush THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
END
$$;
