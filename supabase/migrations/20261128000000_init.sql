-- 20261128000000_init: the console's core tables (spec §1 as fixed in design.md §3) for Postgres / Supabase.
-- Same tables and columns as core/store/sqlite_migrations/0001_init.sql (checked by tests/store/test_schema_parity.py).
-- Row-level security is on for every table. These first policies give each signed-in user their own rows;
-- team-wide visibility comes with the team-mode migration. Policies use the `(select auth.uid())` form so the
-- planner evaluates it once per statement, and every policy column is indexed.

create table if not exists public.training_configs (
    id          text primary key,
    user_id     uuid references auth.users (id) on delete cascade default auth.uid(),
    team_id     uuid,
    name        text not null,
    config      jsonb not null,
    method      text,
    model_name  text,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create unique index if not exists training_configs_name
    on public.training_configs (coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid),
                                coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
create index if not exists training_configs_user on public.training_configs (user_id);

create table if not exists public.datasets (
    id            text primary key,
    user_id       uuid references auth.users (id) on delete cascade default auth.uid(),
    team_id       uuid,
    name          text not null,
    content_hash  text not null,
    path          text not null,
    format        text,
    row_count     integer not null default 0,
    valid_rows    integer not null default 0,
    size_bytes    bigint not null default 0,
    stats         jsonb not null default '{}'::jsonb,
    created_at    timestamptz not null default now()
);
create unique index if not exists datasets_hash
    on public.datasets (coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), content_hash);
create index if not exists datasets_user on public.datasets (user_id);

create table if not exists public.training_jobs (
    id                  text primary key,
    user_id             uuid references auth.users (id) on delete cascade default auth.uid(),
    team_id             uuid,
    training_config_id  text references public.training_configs (id) on delete set null,
    config              jsonb not null default '{}'::jsonb,
    config_name         text,
    dataset_id          text references public.datasets (id) on delete set null,
    model_name          text,
    method              text,
    provider            text not null,
    provider_ref        text,
    provider_params     jsonb not null default '{}'::jsonb,
    gpu_type            text,
    gpu_count           integer not null default 1,
    status              text not null default 'queued' check (status in
                          ('queued', 'provisioning', 'running', 'completing', 'completed', 'failed', 'cancelled',
                           'budget_stopped')),
    reason              text,
    error_message       text,
    budget_limit_usd    double precision,
    cost_per_hour       double precision,
    total_cost_usd      double precision,
    estimate            jsonb not null default '{}'::jsonb,
    progress            double precision not null default 0,
    current_step        integer not null default 0,
    total_steps         integer,
    epoch               double precision,
    dataset_size        integer,
    final_loss          double precision,
    heartbeat_at        timestamptz,
    cancel_requested    boolean not null default false,
    cancel_requested_at timestamptz,
    log_path            text,
    artifact_path       text,
    pod_url             text,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    started_at          timestamptz,
    completed_at        timestamptz
);
create index if not exists training_jobs_status on public.training_jobs (status);
create index if not exists training_jobs_created on public.training_jobs (created_at);
create index if not exists training_jobs_user on public.training_jobs (user_id);

create table if not exists public.training_metrics (
    id                   bigint generated always as identity primary key,
    job_id               text not null references public.training_jobs (id) on delete cascade,
    step                 integer not null,
    epoch                double precision,
    loss                 double precision,
    eval_loss            double precision,
    learning_rate        double precision,
    grad_norm            double precision,
    samples_per_sec      double precision,
    tokens_per_sec       double precision,
    gpu_memory_mb        double precision,
    gpu_memory_total_mb  double precision,
    gpu_util_pct         double precision,
    gpu_temp_c           double precision,
    gpu_power_w          double precision,
    cpu_pct              double precision,
    ram_mb               double precision,
    cost_usd             double precision,
    timestamp            timestamptz not null default now(),
    unique (job_id, step)
);

create table if not exists public.training_predictions (
    id                  bigint generated always as identity primary key,
    job_id              text not null references public.training_jobs (id) on delete cascade,
    step                integer not null,
    epoch               double precision,
    sample_id           text not null,
    prompt              text,
    generated_text      text,
    expected_text       text,
    bleu                double precision,
    rouge_l             double precision,
    exact_match         double precision,
    length_ratio        double precision,
    scores              jsonb not null default '{}'::jsonb,
    generation_seconds  double precision,
    timestamp           timestamptz not null default now(),
    unique (job_id, step, sample_id)
);

create table if not exists public.training_errors (
    id             bigint generated always as identity primary key,
    job_id         text not null references public.training_jobs (id) on delete cascade,
    error_type     text not null,
    error_message  text not null,
    traceback      text,
    hint           text,
    timestamp      timestamptz not null default now()
);
create index if not exists training_errors_job on public.training_errors (job_id);

create table if not exists public.llm_models (
    id                  text primary key,
    user_id             uuid references auth.users (id) on delete cascade default auth.uid(),
    team_id             uuid,
    name                text not null,
    model_type          text not null default 'causal_lm',
    source              text not null default 'training_job',
    source_job_id       text references public.training_jobs (id) on delete set null,
    base_model          text,
    training_config_id  text references public.training_configs (id) on delete set null,
    dataset_id          text references public.datasets (id) on delete set null,
    dataset_hash        text,
    dataset_size        integer,
    artifact_path       text,
    adapters            jsonb not null default '{}'::jsonb,
    metrics             jsonb not null default '{}'::jsonb,
    metadata            jsonb not null default '{}'::jsonb,
    config              jsonb not null default '{}'::jsonb,
    created_at          timestamptz not null default now()
);
create unique index if not exists llm_models_job on public.llm_models (source_job_id);
create index if not exists llm_models_user on public.llm_models (user_id);

-- Row-level security: on for every table, one policy per operation and role.
alter table public.training_configs enable row level security;
alter table public.datasets enable row level security;
alter table public.training_jobs enable row level security;
alter table public.training_metrics enable row level security;
alter table public.training_predictions enable row level security;
alter table public.training_errors enable row level security;
alter table public.llm_models enable row level security;

do $$
declare
    t text;
begin
    -- Tables that carry user_id directly.
    foreach t in array array['training_configs', 'datasets', 'training_jobs', 'llm_models'] loop
        execute format('drop policy if exists "%1$s_select_own" on public.%1$I', t);
        execute format('create policy "%1$s_select_own" on public.%1$I for select to authenticated'
                       ' using (user_id = (select auth.uid()))', t);
        execute format('drop policy if exists "%1$s_insert_own" on public.%1$I', t);
        execute format('create policy "%1$s_insert_own" on public.%1$I for insert to authenticated'
                       ' with check (user_id = (select auth.uid()))', t);
        execute format('drop policy if exists "%1$s_update_own" on public.%1$I', t);
        execute format('create policy "%1$s_update_own" on public.%1$I for update to authenticated'
                       ' using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()))', t);
        execute format('drop policy if exists "%1$s_delete_own" on public.%1$I', t);
        execute format('create policy "%1$s_delete_own" on public.%1$I for delete to authenticated'
                       ' using (user_id = (select auth.uid()))', t);
    end loop;
    -- Tables owned through their job.
    foreach t in array array['training_metrics', 'training_predictions', 'training_errors'] loop
        execute format('create index if not exists %1$s_job_id on public.%1$I (job_id)', t);
        execute format('drop policy if exists "%1$s_select_own" on public.%1$I', t);
        execute format('create policy "%1$s_select_own" on public.%1$I for select to authenticated'
                       ' using (job_id in (select id from public.training_jobs'
                       ' where user_id = (select auth.uid())))', t);
        execute format('drop policy if exists "%1$s_insert_own" on public.%1$I', t);
        execute format('create policy "%1$s_insert_own" on public.%1$I for insert to authenticated'
                       ' with check (job_id in (select id from public.training_jobs'
                       ' where user_id = (select auth.uid())))', t);
        execute format('drop policy if exists "%1$s_update_own" on public.%1$I', t);
        execute format('create policy "%1$s_update_own" on public.%1$I for update to authenticated'
                       ' using (job_id in (select id from public.training_jobs'
                       ' where user_id = (select auth.uid())))', t);
        execute format('drop policy if exists "%1$s_delete_own" on public.%1$I', t);
        execute format('create policy "%1$s_delete_own" on public.%1$I for delete to authenticated'
                       ' using (job_id in (select id from public.training_jobs'
                       ' where user_id = (select auth.uid())))', t);
    end loop;
end
$$;
