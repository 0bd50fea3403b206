-- graphyard's own tables; LangGraph's saver and store create theirs beside them.
-- Same tables and intent as sqlite/migrations/0001_initial.sql. Timestamps stay the same fixed-width
-- ISO text as on SQLite (records are identical on both backends); COLLATE "C" makes their order
-- byte order whatever the database's locale. `seq` is the insertion order SQLite gets from rowid.
CREATE TABLE graphyard_assistants (
    assistant_id text COLLATE "C" PRIMARY KEY,
    graph_id text NOT NULL,
    config jsonb NOT NULL,
    context jsonb NOT NULL,
    metadata jsonb NOT NULL,
    name text NOT NULL,
    description text,
    version integer NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX graphyard_assistants_graph ON graphyard_assistants (graph_id);
CREATE INDEX graphyard_assistants_created ON graphyard_assistants (created_at);
CREATE INDEX graphyard_assistants_updated ON graphyard_assistants (updated_at);
-- jsonb_path_ops serves `@>`, which both metadata filters and auth filters compile to.
CREATE INDEX graphyard_assistants_metadata ON graphyard_assistants USING gin (metadata jsonb_path_ops);

CREATE TABLE graphyard_assistant_versions (
    assistant_id text COLLATE "C" NOT NULL REFERENCES graphyard_assistants (assistant_id) ON DELETE CASCADE,
    version integer NOT NULL,
    graph_id text NOT NULL,
    config jsonb NOT NULL,
    context jsonb NOT NULL,
    metadata jsonb NOT NULL,
    name text NOT NULL,
    description text,
    created_at text COLLATE "C" NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE graphyard_threads (
    thread_id text COLLATE "C" PRIMARY KEY,
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    state_updated_at text COLLATE "C" NOT NULL,
    metadata jsonb NOT NULL,
    status text NOT NULL,
    config jsonb NOT NULL,
    "values" jsonb,
    interrupts jsonb NOT NULL,
    error jsonb,
    seq bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX graphyard_threads_created ON graphyard_threads (created_at);
CREATE INDEX graphyard_threads_updated ON graphyard_threads (updated_at);
CREATE INDEX graphyard_threads_state_updated ON graphyard_threads (state_updated_at);
CREATE INDEX graphyard_threads_status ON graphyard_threads (status);
CREATE INDEX graphyard_threads_metadata ON graphyard_threads USING gin (metadata jsonb_path_ops);
-- No GIN index on "values": it holds whole conversation states and is rewritten by every finished
-- run, so the index would tax the hot path to speed up a rare filter.

-- A run row is its own queue entry.
CREATE TABLE graphyard_runs (
    run_id text COLLATE "C" PRIMARY KEY,
    thread_id text COLLATE "C" NOT NULL REFERENCES graphyard_threads (thread_id) ON DELETE CASCADE,
    assistant_id text NOT NULL,
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    status text NOT NULL,
    metadata jsonb NOT NULL,
    kwargs jsonb NOT NULL,
    multitask_strategy text NOT NULL,
    available_at double precision NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_expires_at double precision,
    cancel_action text,
    temporary boolean NOT NULL DEFAULT false,
    output jsonb,
    seq bigint GENERATED ALWAYS AS IDENTITY
);
-- At most one running run per thread, guarded by the schema.
CREATE UNIQUE INDEX graphyard_runs_one_running ON graphyard_runs (thread_id) WHERE status = 'running';
-- The queue, in claim order.
CREATE INDEX graphyard_runs_queue ON graphyard_runs (available_at, seq) WHERE status = 'pending';
-- A thread's runs (list, in-flight, the claim's per-thread checks).
CREATE INDEX graphyard_runs_thread ON graphyard_runs (thread_id, created_at, seq);
-- Lease renewal, cancel pickup and the expired-lease sweep look at running runs only.
CREATE INDEX graphyard_runs_leases ON graphyard_runs (lease_owner, lease_expires_at) WHERE status = 'running';
