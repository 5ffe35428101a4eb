-- 0001_init: the six tables of spec §1 as fixed in design.md §3, for the embedded SQLite store.
-- Mirrors supabase/migrations/20261128000000_init.sql column for column (tests/store/test_schema_parity.py).
-- Timestamps are ISO-8601 UTC text; JSON is text; booleans are 0/1.

CREATE TABLE training_configs (
    id          TEXT PRIMARY KEY,
    user_id     TEXT,
    team_id     TEXT,
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    method      TEXT,
    model_name  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX training_configs_name ON training_configs (COALESCE(team_id, ''), COALESCE(user_id, ''), name);

CREATE TABLE datasets (
    id            TEXT PRIMARY KEY,
    user_id       TEXT,
    team_id       TEXT,
    name          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    path          TEXT NOT NULL,
    format        TEXT,
    row_count     INTEGER NOT NULL DEFAULT 0,
    valid_rows    INTEGER NOT NULL DEFAULT 0,
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    stats         TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX datasets_hash ON datasets (COALESCE(team_id, ''), content_hash);

CREATE TABLE training_jobs (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT,
    team_id             TEXT,
    training_config_id  TEXT REFERENCES training_configs (id) ON DELETE SET NULL,
    config              TEXT NOT NULL DEFAULT '{}',
    config_name         TEXT,
    dataset_id          TEXT REFERENCES datasets (id) ON DELETE SET NULL,
    model_name          TEXT,
    method              TEXT,
    provider            TEXT NOT NULL,
    provider_ref        TEXT,
    provider_params     TEXT NOT NULL DEFAULT '{}',
    gpu_type            TEXT,
    gpu_count           INTEGER NOT NULL DEFAULT 1,
    status              TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                          ('queued', 'provisioning', 'running', 'completing', 'completed', 'failed', 'cancelled',
                           'budget_stopped')),
    reason              TEXT,
    error_message       TEXT,
    budget_limit_usd    REAL,
    cost_per_hour       REAL,
    total_cost_usd      REAL,
    estimate            TEXT NOT NULL DEFAULT '{}',
    progress            REAL NOT NULL DEFAULT 0,
    current_step        INTEGER NOT NULL DEFAULT 0,
    total_steps         INTEGER,
    epoch               REAL,
    dataset_size        INTEGER,
    final_loss          REAL,
    heartbeat_at        TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    cancel_requested_at TEXT,
    log_path            TEXT,
    artifact_path       TEXT,
    pod_url             TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    started_at          TEXT,
    completed_at        TEXT
);
CREATE INDEX training_jobs_status ON training_jobs (status);
CREATE INDEX training_jobs_created ON training_jobs (created_at);

CREATE TABLE training_metrics (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id               TEXT NOT NULL REFERENCES training_jobs (id) ON DELETE CASCADE,
    step                 INTEGER NOT NULL,
    epoch                REAL,
    loss                 REAL,
    eval_loss            REAL,
    learning_rate        REAL,
    grad_norm            REAL,
    samples_per_sec      REAL,
    tokens_per_sec       REAL,
    gpu_memory_mb        REAL,
    gpu_memory_total_mb  REAL,
    gpu_util_pct         REAL,
    gpu_temp_c           REAL,
    gpu_power_w          REAL,
    cpu_pct              REAL,
    ram_mb               REAL,
    cost_usd             REAL,
    timestamp            TEXT NOT NULL,
    UNIQUE (job_id, step)
);

CREATE TABLE training_predictions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id              TEXT NOT NULL REFERENCES training_jobs (id) ON DELETE CASCADE,
    step                INTEGER NOT NULL,
    epoch               REAL,
    sample_id           TEXT NOT NULL,
    prompt              TEXT,
    generated_text      TEXT,
    expected_text       TEXT,
    bleu                REAL,
    rouge_l             REAL,
    exact_match         REAL,
    length_ratio        REAL,
    scores              TEXT NOT NULL DEFAULT '{}',
    generation_seconds  REAL,
    timestamp           TEXT NOT NULL,
    UNIQUE (job_id, step, sample_id)
);

CREATE TABLE training_errors (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL REFERENCES training_jobs (id) ON DELETE CASCADE,
    error_type     TEXT NOT NULL,
    error_message  TEXT NOT NULL,
    traceback      TEXT,
    hint           TEXT,
    timestamp      TEXT NOT NULL
);
CREATE INDEX training_errors_job ON training_errors (job_id);

CREATE TABLE llm_models (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT,
    team_id             TEXT,
    name                TEXT NOT NULL,
    model_type          TEXT NOT NULL DEFAULT 'causal_lm',
    source              TEXT NOT NULL DEFAULT 'training_job',
    source_job_id       TEXT REFERENCES training_jobs (id) ON DELETE SET NULL,
    base_model          TEXT,
    training_config_id  TEXT REFERENCES training_configs (id) ON DELETE SET NULL,
    dataset_id          TEXT REFERENCES datasets (id) ON DELETE SET NULL,
    dataset_hash        TEXT,
    dataset_size        INTEGER,
    artifact_path       TEXT,
    adapters            TEXT NOT NULL DEFAULT '{}',
    metrics             TEXT NOT NULL DEFAULT '{}',
    metadata            TEXT NOT NULL DEFAULT '{}',
    config              TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX llm_models_job ON llm_models (source_job_id);
