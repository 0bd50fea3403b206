-- Crons: a schedule that creates runs. A thread cron belongs to its thread, every cron to its
-- assistant: deleting either deletes the cron (and its fires).
CREATE TABLE graphyard_crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES graphyard_assistants (assistant_id) ON DELETE CASCADE,
    thread_id TEXT REFERENCES graphyard_threads (thread_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    schedule TEXT NOT NULL,
    timezone TEXT,
    end_time TEXT,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    on_run_completed TEXT,
    enabled INTEGER NOT NULL,
    next_run_date TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX graphyard_crons_due ON graphyard_crons (next_run_date) WHERE enabled = 1;
CREATE INDEX graphyard_crons_thread ON graphyard_crons (thread_id);
CREATE INDEX graphyard_crons_assistant ON graphyard_crons (assistant_id);

-- One row per (cron, scheduled time) that some worker fired: the primary key is what stops two
-- workers from firing the same occurrence (every worker runs the scheduler; no leader).
CREATE TABLE graphyard_cron_fires (
    cron_id TEXT NOT NULL REFERENCES graphyard_crons (cron_id) ON DELETE CASCADE,
    scheduled_at TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    PRIMARY KEY (cron_id, scheduled_at)
);
