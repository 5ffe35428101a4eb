-- 20261129000000_team_mode: teams on one hosted dashboard (issue #7, design.md §3-§4, spec §10).
--
-- * profiles (one per auth user, made by a trigger), teams, team_members (owner | admin | member), invitations by
--   email address.
-- * team_id on configs, datasets, jobs and models becomes a foreign key; a row with a team_id belongs to that team,
--   a row without one to its user alone.
-- * Row-level security per table and operation for the `authenticated` role, written the Supabase way:
--   `(select auth.uid())` so the planner evaluates it once per statement, membership looked up through
--   `security definer` helpers in schema `private` (not exposed by the API) so team_members' own policies do not
--   recurse, and an index on every column a policy filters on.
-- * job_tokens: a random token per job, stored as its SHA-256, handed to the training machine. With it the machine
--   may only call the `security definer` ingest_* functions below, for that job, while the token is not revoked
--   and the job has not ended. The anon role (the key the machine holds besides its token) has no policy on any
--   table, so it reads and writes nothing directly.
-- * provider_credentials: provider API keys per user, encrypted by the dashboard (Fernet, key from its secrets)
--   before they reach the database; only the owner's rows are visible, and only as ciphertext.
-- Written to be re-runnable (if not exists / or replace / drop ... if exists) although the runner is versioned.

create schema if not exists private;
grant usage on schema private to authenticated;

-- ---------------------------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------------------------
create table if not exists public.profiles (
    id            uuid primary key references auth.users (id) on delete cascade,
    email         text,
    display_name  text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

create table if not exists public.teams (
    id          uuid primary key default gen_random_uuid(),
    name        text not null check (length(btrim(name)) between 1 and 80),
    created_by  uuid references auth.users (id) on delete set null default auth.uid(),
    created_at  timestamptz not null default now()
);
create index if not exists teams_created_by on public.teams (created_by);

create table if not exists public.team_members (
    team_id     uuid not null references public.teams (id) on delete cascade,
    user_id     uuid not null references auth.users (id) on delete cascade,
    role        text not null default 'member' check (role in ('owner', 'admin', 'member')),
    created_at  timestamptz not null default now(),
    primary key (team_id, user_id)
);
create index if not exists team_members_user on public.team_members (user_id);

create table if not exists public.invitations (
    id           uuid primary key default gen_random_uuid(),
    team_id      uuid not null references public.teams (id) on delete cascade,
    email        text not null check (email = lower(btrim(email)) and position('@' in email) > 1),
    role         text not null default 'member' check (role in ('admin', 'member')),
    invited_by   uuid references auth.users (id) on delete set null default auth.uid(),
    created_at   timestamptz not null default now(),
    accepted_at  timestamptz,
    accepted_by  uuid references auth.users (id) on delete set null,
    unique (team_id, email)
);
create index if not exists invitations_email on public.invitations (email);

create table if not exists public.job_tokens (
    id          uuid primary key default gen_random_uuid(),
    job_id      text not null references public.training_jobs (id) on delete cascade,
    token_hash  text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
    created_by  uuid references auth.users (id) on delete set null default auth.uid(),
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);
create index if not exists job_tokens_job on public.job_tokens (job_id);

create table if not exists public.provider_credentials (
    id                 uuid primary key default gen_random_uuid(),
    user_id            uuid not null references auth.users (id) on delete cascade default auth.uid(),
    provider           text not null,
    api_key_encrypted  text not null,
    key_hint           text,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    unique (user_id, provider)
);

-- team_id on the shared tables: a foreign key now that teams exist, and indexed for the policies.
do $$
declare
    t text;
begin
    foreach t in array array['training_configs', 'datasets', 'training_jobs', 'llm_models'] loop
        if not exists (select 1 from pg_constraint where conname = t || '_team_fk') then
            execute format('alter table public.%1$I add constraint %2$I foreign key (team_id)'
                           ' references public.teams (id) on delete cascade', t, t || '_team_fk');
        end if;
        execute format('create index if not exists %2$I on public.%1$I (team_id)', t, t || '_team');
    end loop;
end
$$;

-- Names and content hashes are unique per workspace: per team for team rows, per user for personal rows (the
-- init index keyed personal rows on the hash alone, which would let one user's upload block another's).
create unique index if not exists training_configs_team_name on public.training_configs (team_id, name)
    where team_id is not null;
drop index if exists public.datasets_hash;
create unique index if not exists datasets_team_hash on public.datasets (team_id, content_hash)
    where team_id is not null;
create unique index if not exists datasets_user_hash on public.datasets (user_id, content_hash)
    where team_id is null;

-- ---------------------------------------------------------------------------------------------------------------
-- Membership helpers. security definer: they read team_members without its policies, which is what keeps the
-- team_members policies from recursing into themselves. search_path is empty so a caller cannot shadow a table.
-- ---------------------------------------------------------------------------------------------------------------
create or replace function private.my_team_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select team_id from public.team_members where user_id = (select auth.uid())
$$;

create or replace function private.my_managed_team_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select team_id from public.team_members where user_id = (select auth.uid()) and role in ('owner', 'admin')
$$;

create or replace function private.my_owned_team_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select team_id from public.team_members where user_id = (select auth.uid()) and role = 'owner'
$$;

create or replace function private.my_invited_team_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select team_id from public.invitations
     where email = lower((select auth.jwt()) ->> 'email') and accepted_at is null
$$;

create or replace function private.teammate_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select distinct m.user_id from public.team_members m
     where m.team_id in (select team_id from public.team_members where user_id = (select auth.uid()))
$$;

-- Jobs the caller may see: their personal jobs and every job of their teams. The child tables (metrics,
-- predictions, errors, tokens) filter on this set instead of re-joining training_jobs in every policy.
create or replace function private.visible_job_ids() returns setof text
language sql stable security definer set search_path = ''
as $$
    select j.id from public.training_jobs j
     where (j.team_id is null and j.user_id = (select auth.uid()))
        or j.team_id in (select team_id from public.team_members where user_id = (select auth.uid()))
$$;

revoke all on all functions in schema private from public, anon;
grant execute on function private.my_team_ids(), private.my_managed_team_ids(), private.my_owned_team_ids(),
    private.my_invited_team_ids(), private.teammate_ids(), private.visible_job_ids() to authenticated;

-- A profile row for every new auth user (the pattern of Supabase's "Managing user data" guide).
create or replace function private.handle_new_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.profiles (id, email) values (new.id, lower(new.email)) on conflict (id) do nothing;
    return new;
end
$$;
drop trigger if exists on_auth_user_created on auth.users;
create trigger on_auth_user_created after insert on auth.users
    for each row execute function private.handle_new_user();

-- The creator of a team is its first owner.
create or replace function private.add_team_owner() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
    if new.created_by is not null then
        insert into public.team_members (team_id, user_id, role) values (new.id, new.created_by, 'owner')
            on conflict (team_id, user_id) do nothing;
    end if;
    return new;
end
$$;
drop trigger if exists teams_add_owner on public.teams;
create trigger teams_add_owner after insert on public.teams
    for each row execute function private.add_team_owner();

-- ---------------------------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------------------------
alter table public.profiles enable row level security;
alter table public.teams enable row level security;
alter table public.team_members enable row level security;
alter table public.invitations enable row level security;
alter table public.job_tokens enable row level security;
alter table public.provider_credentials enable row level security;

do $$
declare
    t text;
    op text;
    mine   constant text := '(team_id is null and user_id = (select auth.uid()))';
    team   constant text := 'team_id in (select private.my_team_ids())';
    job    constant text := 'job_id in (select private.visible_job_ids())';
begin
    -- Replace the init migration's owner-only policies (and ours, when re-run).
    foreach t in array array['training_configs', 'datasets', 'training_jobs', 'llm_models', 'training_metrics',
                             'training_predictions', 'training_errors', 'job_tokens'] loop
        foreach op in array array['select', 'insert', 'update', 'delete'] loop
            execute format('drop policy if exists %I on public.%I', t || '_' || op || '_own', t);
            execute format('drop policy if exists %I on public.%I', t || '_' || op, t);
        end loop;
    end loop;

    -- Shared tables that carry user_id and team_id: personal rows for their owner, team rows for the team.
    -- Deleting a team row is for its author or a team admin.
    foreach t in array array['training_configs', 'datasets', 'training_jobs', 'llm_models'] loop
        execute format('create policy "%1$s_select" on public.%1$I for select to authenticated'
                       ' using (%2$s or %3$s)', t, mine, team);
        execute format('create policy "%1$s_insert" on public.%1$I for insert to authenticated'
                       ' with check (user_id = (select auth.uid()) and (team_id is null or %2$s))', t, team);
        execute format('create policy "%1$s_update" on public.%1$I for update to authenticated'
                       ' using (%2$s or %3$s) with check (%2$s or %3$s)', t, mine, team);
        execute format('create policy "%1$s_delete" on public.%1$I for delete to authenticated'
                       ' using (%2$s or (%3$s and (user_id = (select auth.uid()) or'
                       ' team_id in (select private.my_managed_team_ids()))))', t, mine, team);
    end loop;

    -- Rows owned through their job: whoever may see the job may read and write its rows.
    foreach t in array array['training_metrics', 'training_predictions', 'training_errors', 'job_tokens'] loop
        execute format('create policy "%1$s_select" on public.%1$I for select to authenticated using (%2$s)', t, job);
        execute format('create policy "%1$s_insert" on public.%1$I for insert to authenticated with check (%2$s)',
                       t, job);
        execute format('create policy "%1$s_update" on public.%1$I for update to authenticated'
                       ' using (%2$s) with check (%2$s)', t, job);
        execute format('create policy "%1$s_delete" on public.%1$I for delete to authenticated using (%2$s)', t, job);
    end loop;
end
$$;

-- profiles: your own, and your teammates' (to show names); no delete policy (the auth user's deletion cascades).
drop policy if exists "profiles_select" on public.profiles;
create policy "profiles_select" on public.profiles for select to authenticated
    using (id = (select auth.uid()) or id in (select private.teammate_ids()));
drop policy if exists "profiles_insert" on public.profiles;
create policy "profiles_insert" on public.profiles for insert to authenticated
    with check (id = (select auth.uid()));
drop policy if exists "profiles_update" on public.profiles;
create policy "profiles_update" on public.profiles for update to authenticated
    using (id = (select auth.uid())) with check (id = (select auth.uid()));

-- teams: members see their teams, invitees the team they are invited to; admins rename; owners delete.
drop policy if exists "teams_select" on public.teams;
create policy "teams_select" on public.teams for select to authenticated
    using (id in (select private.my_team_ids()) or id in (select private.my_invited_team_ids()));
drop policy if exists "teams_insert" on public.teams;
create policy "teams_insert" on public.teams for insert to authenticated
    with check (created_by = (select auth.uid()));
drop policy if exists "teams_update" on public.teams;
create policy "teams_update" on public.teams for update to authenticated
    using (id in (select private.my_managed_team_ids())) with check (id in (select private.my_managed_team_ids()));
drop policy if exists "teams_delete" on public.teams;
create policy "teams_delete" on public.teams for delete to authenticated
    using (id in (select private.my_owned_team_ids()));

-- team_members: members see the roster; admins add and change members (only owners make owners); anyone may
-- leave; admins remove non-owners, owners remove anyone.
drop policy if exists "team_members_select" on public.team_members;
create policy "team_members_select" on public.team_members for select to authenticated
    using (team_id in (select private.my_team_ids()));
drop policy if exists "team_members_insert" on public.team_members;
create policy "team_members_insert" on public.team_members for insert to authenticated
    with check (team_id in (select private.my_managed_team_ids())
                and (role <> 'owner' or team_id in (select private.my_owned_team_ids())));
drop policy if exists "team_members_update" on public.team_members;
create policy "team_members_update" on public.team_members for update to authenticated
    using (team_id in (select private.my_managed_team_ids()))
    with check (team_id in (select private.my_managed_team_ids())
                and (role <> 'owner' or team_id in (select private.my_owned_team_ids())));
drop policy if exists "team_members_delete" on public.team_members;
create policy "team_members_delete" on public.team_members for delete to authenticated
    using (user_id = (select auth.uid())
           or team_id in (select private.my_owned_team_ids())
           or (role <> 'owner' and team_id in (select private.my_managed_team_ids())));

-- invitations: team admins manage them; the invited address sees (and may decline) its own.
drop policy if exists "invitations_select" on public.invitations;
create policy "invitations_select" on public.invitations for select to authenticated
    using (team_id in (select private.my_managed_team_ids()) or email = lower((select auth.jwt()) ->> 'email'));
drop policy if exists "invitations_insert" on public.invitations;
create policy "invitations_insert" on public.invitations for insert to authenticated
    with check (team_id in (select private.my_managed_team_ids()) and invited_by = (select auth.uid()));
drop policy if exists "invitations_update" on public.invitations;
create policy "invitations_update" on public.invitations for update to authenticated
    using (team_id in (select private.my_managed_team_ids()))
    with check (team_id in (select private.my_managed_team_ids()));
drop policy if exists "invitations_delete" on public.invitations;
create policy "invitations_delete" on public.invitations for delete to authenticated
    using (team_id in (select private.my_managed_team_ids()) or email = lower((select auth.jwt()) ->> 'email'));

-- provider_credentials: the owner only, for every operation.
drop policy if exists "provider_credentials_select" on public.provider_credentials;
create policy "provider_credentials_select" on public.provider_credentials for select to authenticated
    using (user_id = (select auth.uid()));
drop policy if exists "provider_credentials_insert" on public.provider_credentials;
create policy "provider_credentials_insert" on public.provider_credentials for insert to authenticated
    with check (user_id = (select auth.uid()));
drop policy if exists "provider_credentials_update" on public.provider_credentials;
create policy "provider_credentials_update" on public.provider_credentials for update to authenticated
    using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
drop policy if exists "provider_credentials_delete" on public.provider_credentials;
create policy "provider_credentials_delete" on public.provider_credentials for delete to authenticated
    using (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------------------------------------------
-- Team actions that need more than one row written atomically (exposed as RPCs to signed-in users only).
-- ---------------------------------------------------------------------------------------------------------------
create or replace function public.create_team(p_name text) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_team uuid;
begin
    if (select auth.uid()) is null then
        raise exception 'Sign in to create a team.' using errcode = '42501';
    end if;
    insert into public.teams (name, created_by) values (btrim(p_name), (select auth.uid())) returning id into v_team;
    return v_team;  -- the teams_add_owner trigger made the caller its owner
end
$$;

create or replace function public.accept_invitation(p_invitation uuid) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_inv public.invitations;
begin
    select * into v_inv from public.invitations
     where id = p_invitation and email = lower((select auth.jwt()) ->> 'email') and accepted_at is null
       for update;
    if v_inv.id is null or (select auth.uid()) is null then
        raise exception 'No open invitation % for this account.', p_invitation using errcode = '42501';
    end if;
    insert into public.team_members (team_id, user_id, role) values (v_inv.team_id, (select auth.uid()), v_inv.role)
        on conflict (team_id, user_id) do nothing;
    update public.invitations set accepted_at = now(), accepted_by = (select auth.uid()) where id = v_inv.id;
    return v_inv.team_id;
end
$$;

revoke all on function public.create_team(text), public.accept_invitation(uuid) from public, anon;
grant execute on function public.create_team(text), public.accept_invitation(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------------------------
-- Ingest for training machines, keyed by a job token (never by a user session or the service key).
-- ---------------------------------------------------------------------------------------------------------------

-- The job a token may write to; refuses an unknown or revoked token and a job that has ended.
create or replace function private.job_for_token(p_token text) returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
    v_job text;
    v_status text;
    v_revoked timestamptz;
begin
    if p_token is null or length(p_token) < 32 then
        raise exception 'Job token refused: missing or malformed.' using errcode = '28000';
    end if;
    select t.job_id, j.status, t.revoked_at into v_job, v_status, v_revoked
      from public.job_tokens t join public.training_jobs j on j.id = t.job_id
     where t.token_hash = encode(sha256(convert_to(p_token, 'UTF8')), 'hex');
    if v_job is null then
        raise exception 'Job token refused: unknown token.' using errcode = '28000';
    end if;
    if v_revoked is not null then
        raise exception 'Job token refused: revoked for job %.', v_job using errcode = '28000';
    end if;
    if v_status in ('completed', 'failed', 'cancelled', 'budget_stopped') then
        raise exception 'Job token refused: job % has ended (%).', v_job, v_status using errcode = '28000';
    end if;
    return v_job;
end
$$;

-- Rows may omit job_id; a row naming another job voids the whole batch.
create or replace function private.check_rows(p_job text, p_rows jsonb) returns void
language plpgsql immutable set search_path = ''
as $$
begin
    if jsonb_typeof(p_rows) is distinct from 'array' then
        raise exception 'Ingest rows must be a JSON array.' using errcode = '22023';
    end if;
    if exists (select 1 from jsonb_array_elements(p_rows) e
                where jsonb_typeof(e) <> 'object' or (e ? 'job_id' and e ->> 'job_id' is distinct from p_job)) then
        raise exception 'Job token refused: this token writes rows of job % only.', p_job using errcode = '28000';
    end if;
end
$$;

-- The job fields a training machine may set, and nothing else (not status, owner, team, cancel flag).
create or replace function private.apply_job_fields(p_job text, p_fields jsonb) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_unknown text;
begin
    select string_agg(k, ', ') into v_unknown from jsonb_object_keys(coalesce(p_fields, '{}')) k
     where k not in ('heartbeat_at', 'current_step', 'total_steps', 'epoch', 'progress', 'total_cost_usd',
                     'final_loss', 'estimate', 'reason', 'error_message', 'artifact_path', 'dataset_size');
    if v_unknown is not null then
        raise exception 'A job token cannot set %.', v_unknown using errcode = '22023';
    end if;
    update public.training_jobs set
        current_step   = case when p_fields ? 'current_step' then coalesce((p_fields ->> 'current_step')::integer, current_step) else current_step end,
        total_steps    = case when p_fields ? 'total_steps' then (p_fields ->> 'total_steps')::integer else total_steps end,
        epoch          = case when p_fields ? 'epoch' then (p_fields ->> 'epoch')::double precision else epoch end,
        progress       = case when p_fields ? 'progress' then least(1, greatest(0, coalesce((p_fields ->> 'progress')::double precision, progress))) else progress end,
        total_cost_usd = case when p_fields ? 'total_cost_usd' then (p_fields ->> 'total_cost_usd')::double precision else total_cost_usd end,
        final_loss     = case when p_fields ? 'final_loss' then (p_fields ->> 'final_loss')::double precision else final_loss end,
        estimate       = case when p_fields ? 'estimate' then coalesce(p_fields -> 'estimate', '{}'::jsonb) else estimate end,
        reason         = case when p_fields ? 'reason' then p_fields ->> 'reason' else reason end,
        error_message  = case when p_fields ? 'error_message' then p_fields ->> 'error_message' else error_message end,
        artifact_path  = case when p_fields ? 'artifact_path' then p_fields ->> 'artifact_path' else artifact_path end,
        dataset_size   = case when p_fields ? 'dataset_size' then (p_fields ->> 'dataset_size')::integer else dataset_size end,
        -- The database clock, not the machine's: staleness is judged against it.
        heartbeat_at   = now(),
        updated_at     = now()
     where id = p_job;
end
$$;

create or replace function public.ingest_metrics(p_token text, p_rows jsonb) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_job text := private.job_for_token(p_token);
    r record;
    n integer := 0;
begin
    perform private.check_rows(v_job, p_rows);
    -- Row by row, so a batch holding the same step twice (a system sample and a loss) merges like replays do.
    for r in select * from jsonb_to_recordset(p_rows) as x(
            step integer, epoch double precision, loss double precision, eval_loss double precision,
            learning_rate double precision, grad_norm double precision, samples_per_sec double precision,
            tokens_per_sec double precision, gpu_memory_mb double precision, gpu_memory_total_mb double precision,
            gpu_util_pct double precision, gpu_temp_c double precision, gpu_power_w double precision,
            cpu_pct double precision, ram_mb double precision, cost_usd double precision, "timestamp" timestamptz)
    loop
        if r.step is null then
            raise exception 'Every metric row needs a step.' using errcode = '22023';
        end if;
        insert into public.training_metrics as m (job_id, step, epoch, loss, eval_loss, learning_rate, grad_norm,
                samples_per_sec, tokens_per_sec, gpu_memory_mb, gpu_memory_total_mb, gpu_util_pct, gpu_temp_c,
                gpu_power_w, cpu_pct, ram_mb, cost_usd, "timestamp")
        values (v_job, r.step, r.epoch, r.loss, r.eval_loss, r.learning_rate, r.grad_norm, r.samples_per_sec,
                r.tokens_per_sec, r.gpu_memory_mb, r.gpu_memory_total_mb, r.gpu_util_pct, r.gpu_temp_c,
                r.gpu_power_w, r.cpu_pct, r.ram_mb, r.cost_usd, coalesce(r."timestamp", now()))
        on conflict (job_id, step) do update set
            epoch = coalesce(excluded.epoch, m.epoch), loss = coalesce(excluded.loss, m.loss),
            eval_loss = coalesce(excluded.eval_loss, m.eval_loss),
            learning_rate = coalesce(excluded.learning_rate, m.learning_rate),
            grad_norm = coalesce(excluded.grad_norm, m.grad_norm),
            samples_per_sec = coalesce(excluded.samples_per_sec, m.samples_per_sec),
            tokens_per_sec = coalesce(excluded.tokens_per_sec, m.tokens_per_sec),
            gpu_memory_mb = coalesce(excluded.gpu_memory_mb, m.gpu_memory_mb),
            gpu_memory_total_mb = coalesce(excluded.gpu_memory_total_mb, m.gpu_memory_total_mb),
            gpu_util_pct = coalesce(excluded.gpu_util_pct, m.gpu_util_pct),
            gpu_temp_c = coalesce(excluded.gpu_temp_c, m.gpu_temp_c),
            gpu_power_w = coalesce(excluded.gpu_power_w, m.gpu_power_w),
            cpu_pct = coalesce(excluded.cpu_pct, m.cpu_pct), ram_mb = coalesce(excluded.ram_mb, m.ram_mb),
            cost_usd = coalesce(excluded.cost_usd, m.cost_usd);
        n := n + 1;
    end loop;
    return n;
end
$$;

create or replace function public.ingest_predictions(p_token text, p_rows jsonb) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_job text := private.job_for_token(p_token);
    r record;
    n integer := 0;
begin
    perform private.check_rows(v_job, p_rows);
    for r in select * from jsonb_to_recordset(p_rows) as x(
            step integer, sample_id text, epoch double precision, prompt text, generated_text text,
            expected_text text, bleu double precision, rouge_l double precision, exact_match double precision,
            length_ratio double precision, scores jsonb, generation_seconds double precision,
            "timestamp" timestamptz)
    loop
        if r.step is null or r.sample_id is null then
            raise exception 'Every prediction row needs a step and a sample_id.' using errcode = '22023';
        end if;
        insert into public.training_predictions as p (job_id, step, sample_id, epoch, prompt, generated_text,
                expected_text, bleu, rouge_l, exact_match, length_ratio, scores, generation_seconds, "timestamp")
        values (v_job, r.step, r.sample_id, r.epoch, r.prompt, r.generated_text, r.expected_text, r.bleu,
                r.rouge_l, r.exact_match, r.length_ratio, coalesce(r.scores, '{}'::jsonb), r.generation_seconds,
                coalesce(r."timestamp", now()))
        on conflict (job_id, step, sample_id) do update set
            epoch = coalesce(excluded.epoch, p.epoch), prompt = coalesce(excluded.prompt, p.prompt),
            generated_text = coalesce(excluded.generated_text, p.generated_text),
            expected_text = coalesce(excluded.expected_text, p.expected_text),
            bleu = coalesce(excluded.bleu, p.bleu), rouge_l = coalesce(excluded.rouge_l, p.rouge_l),
            exact_match = coalesce(excluded.exact_match, p.exact_match),
            length_ratio = coalesce(excluded.length_ratio, p.length_ratio),
            scores = case when excluded.scores = '{}'::jsonb then p.scores else excluded.scores end,
            generation_seconds = coalesce(excluded.generation_seconds, p.generation_seconds);
        n := n + 1;
    end loop;
    return n;
end
$$;

-- Idempotent: a replayed error (same type and message) is not written twice.
create or replace function public.ingest_error(p_token text, p_error_type text, p_message text,
                                               p_traceback text default null, p_hint text default null)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_job text := private.job_for_token(p_token);
begin
    if exists (select 1 from public.training_errors
                where job_id = v_job and error_type = p_error_type and error_message = p_message) then
        return false;
    end if;
    insert into public.training_errors (job_id, error_type, error_message, traceback, hint)
        values (v_job, coalesce(p_error_type, 'error'), coalesce(p_message, ''), p_traceback, p_hint);
    return true;
end
$$;

-- Compare-and-set of the states a training machine reports (core/lifecycle.py); `completed` stays the
-- console's, which registers the model in the same transaction. Returns whether the state changed.
create or replace function public.ingest_status(p_token text, p_status text, p_fields jsonb default '{}'::jsonb)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_job text := private.job_for_token(p_token);
    v_sources text[];
begin
    v_sources := case p_status
        when 'running' then array['provisioning']
        when 'completing' then array['provisioning', 'running']
        when 'failed' then array['queued', 'provisioning', 'running', 'completing']
        when 'cancelled' then array['queued', 'provisioning', 'running', 'completing']
        when 'budget_stopped' then array['queued', 'provisioning', 'running', 'completing']
    end;
    if v_sources is null then
        raise exception 'A job token may report running, completing, failed, cancelled or budget_stopped, not %.',
            coalesce(p_status, 'null') using errcode = '22023';
    end if;
    update public.training_jobs set
        status = p_status,
        started_at = case when p_status = 'running' then coalesce(started_at, now()) else started_at end,
        completed_at = case when p_status in ('failed', 'cancelled', 'budget_stopped')
                            then coalesce(completed_at, now()) else completed_at end,
        updated_at = now()
     where id = v_job and status = any (v_sources);
    if not found then
        return false;
    end if;
    perform private.apply_job_fields(v_job, coalesce(p_fields, '{}'::jsonb));
    return true;
end
$$;

-- Liveness and progress; answers whether the console asked the job to stop.
create or replace function public.ingest_heartbeat(p_token text, p_fields jsonb default '{}'::jsonb)
returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
    v_job text := private.job_for_token(p_token);
    v_cancel boolean;
begin
    perform private.apply_job_fields(v_job, coalesce(p_fields, '{}'::jsonb));
    select cancel_requested into v_cancel from public.training_jobs where id = v_job;
    return coalesce(v_cancel, false);
end
$$;

revoke all on function private.job_for_token(text), private.check_rows(text, jsonb),
    private.apply_job_fields(text, jsonb) from public, anon, authenticated;
-- The machine calls these with the project's anon key plus its job token; signed-in users may call them too
-- (the token, not the caller, is what authorises the write).
grant execute on function public.ingest_metrics(text, jsonb), public.ingest_predictions(text, jsonb),
    public.ingest_error(text, text, text, text, text), public.ingest_status(text, text, jsonb),
    public.ingest_heartbeat(text, jsonb) to anon, authenticated;
