-- Crons: a schedule that creates runs. Same tables and intent as sqlite/migrations/0002_crons.sql.
-- A thread cron belongs to its thread, every cron to its assistant: deleting either deletes the
-- cron (and its fires).
CREATE TABLE graphyard_crons (
    cron_id text COLLATE "C" PRIMARY KEY,
    assistant_id text COLLATE "C" NOT NULL REFERENCES graphyard_assistants (assistant_id) ON DELETE CASCADE,
    thread_id text COLLATE "C" REFERENCES graphyard_threads (thread_id) ON DELETE CASCADE,
    user_id text NOT NULL,
    schedule text NOT NULL,
    timezone text,
    end_time text COLLATE "C",
    payload jsonb NOT NULL,
    metadata jsonb NOT NULL,
    on_run_completed text,
    enabled boolean NOT NULL,
    next_run_date text COLLATE "C",
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY
);
-- The scheduler's scan: enabled crons by next run.
CREATE INDEX graphyard_crons_due ON graphyard_crons (next_run_date) WHERE enabled;
CREATE INDEX graphyard_crons_thread ON graphyard_crons (thread_id);
CREATE INDEX graphyard_crons_assistant ON graphyard_crons (assistant_id);
CREATE INDEX graphyard_crons_metadata ON graphyard_crons USING gin (metadata jsonb_path_ops);

-- One row per (cron, scheduled time) that some worker fired: the primary key is what stops two
-- workers from firing the same occurrence (every worker runs the scheduler; no leader).
CREATE TABLE graphyard_cron_fires (
    cron_id text COLLATE "C" NOT NULL REFERENCES graphyard_crons (cron_id) ON DELETE CASCADE,
    scheduled_at text COLLATE "C" NOT NULL,
    fired_at text COLLATE "C" NOT NULL,
    PRIMARY KEY (cron_id, scheduled_at)
);
