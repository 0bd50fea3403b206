-- Nothing to do on SQLite: its claim is one UPDATE under the single writer (queries.sql, claim_run).
-- Same number as postgres/migrations/0006_claim_function.sql, which gives PostgreSQL a claim function.
SELECT 1;
