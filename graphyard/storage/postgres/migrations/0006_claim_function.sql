-- Claiming a run in one round trip. Same number as sqlite/migrations/0006_claim_function.sql (a no-op there).
--
-- Take the most urgent (lowest priority), then oldest runnable run: due, at the head of its thread's queue,
-- nothing running on its thread; a thread's runs share its priority, so its own queue stays FIFO.
-- SKIP LOCKED lets concurrent claimers pass each other, so two of them may pick runs of one thread; the
-- partial unique index (one running run per thread) refuses the second, which looks again. The EXCEPTION
-- block is a subtransaction inside the server: losing that race leaves the caller's transaction usable
-- without the client-side SAVEPOINT and RELEASE (two round trips) the claim used to cost.
CREATE FUNCTION graphyard_claim_run(
    claimer text, claim_at double precision, expires double precision, stamp text, attempts integer
) RETURNS SETOF graphyard_runs
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. attempts LOOP
        BEGIN
            RETURN QUERY
            WITH next AS (
                SELECT c.run_id FROM graphyard_runs AS c
                WHERE c.status = 'pending' AND c.available_at <= claim_at
                  AND NOT EXISTS (
                      SELECT 1 FROM graphyard_runs AS o
                      WHERE o.thread_id = c.thread_id
                        AND (o.status = 'running'
                             OR (o.status = 'pending' AND (o.available_at, o.seq) < (c.available_at, c.seq)))
                  )
                ORDER BY c.priority, c.available_at, c.seq
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE graphyard_runs AS r
            SET status = 'running', lease_owner = claimer, lease_expires_at = expires,
                attempt = r.attempt + 1, updated_at = stamp
            FROM next
            WHERE r.run_id = next.run_id
            RETURNING r.*;
            RETURN;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- another worker started a run on this thread between our look and our update
        END;
    END LOOP;
END
$$;
