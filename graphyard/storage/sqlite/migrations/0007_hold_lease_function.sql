-- Nothing to do on SQLite: its lease check is one SELECT under the single writer (queries.sql, hold_lease).
-- Same number as postgres/migrations/0007_hold_lease_function.sql, which gives PostgreSQL a raising check.
SELECT 1;
