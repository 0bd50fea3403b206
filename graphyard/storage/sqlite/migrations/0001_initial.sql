-- graphyard's own tables; LangGraph's saver and store create theirs beside them.
CREATE TABLE graphyard_assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX graphyard_assistants_graph ON graphyard_assistants (graph_id);
CREATE INDEX graphyard_assistants_created ON graphyard_assistants (created_at);

CREATE TABLE graphyard_assistant_versions (
    assistant_id TEXT NOT NULL REFERENCES graphyard_assistants (assistant_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE graphyard_threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state_updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    "values" TEXT,
    interrupts TEXT NOT NULL,
    error TEXT
);
CREATE INDEX graphyard_threads_updated ON graphyard_threads (updated_at);
CREATE INDEX graphyard_threads_status ON graphyard_threads (status);

-- A run row is its own queue entry.
CREATE TABLE graphyard_runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES graphyard_threads (thread_id) ON DELETE CASCADE,
    assistant_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    available_at REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at REAL,
    cancel_action TEXT,
    temporary INTEGER NOT NULL DEFAULT 0,
    output TEXT
);
-- At most one running run per thread, guarded by the schema.
CREATE UNIQUE INDEX graphyard_runs_one_running ON graphyard_runs (thread_id) WHERE status = 'running';
CREATE INDEX graphyard_runs_queue ON graphyard_runs (available_at) WHERE status = 'pending';
CREATE INDEX graphyard_runs_thread ON graphyard_runs (thread_id, created_at);
