-- What a Supabase project's database holds before any migration of ours runs, reduced to what our migrations and
-- tests touch. Applied by tests/support/postgres.py to the template database; never shipped to a real project.
--
-- * Roles as Supabase creates them: anon, authenticated, service_role (bypasses RLS), and authenticator, the login
--   role PostgREST connects as and switches from (`set local role <jwt role>`).
-- * Schema auth: auth.users (the columns of GoTrue's own first migration that our code and fakes use), and
--   auth.uid() / auth.role() / auth.jwt() reading the `request.jwt.claims` setting that PostgREST sets per request,
--   written as in GoTrue's migration 20211202183645_update_auth_uid.up.sql (supabase/auth).
-- * Default privileges: Supabase grants table and function privileges in `public` to anon, authenticated and
--   service_role, so row-level security (not GRANTs) is what protects rows; we reproduce that, or the RLS tests
--   would pass for the wrong reason.
-- * supabase_migrations.schema_migrations: where the Supabase CLI (`supabase db push`) records applied versions;
--   core/store/pg_migrate.py writes the same table.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
    end if;
end
$$;
grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
    instance_id          uuid,
    id                   uuid primary key default gen_random_uuid(),
    aud                  varchar(255) default 'authenticated',
    role                 varchar(255) default 'authenticated',
    email                varchar(255) unique,
    encrypted_password   varchar(255),
    email_confirmed_at   timestamptz,
    last_sign_in_at      timestamptz,
    raw_app_meta_data    jsonb default '{}'::jsonb,
    raw_user_meta_data   jsonb default '{}'::jsonb,
    created_at           timestamptz default now(),
    updated_at           timestamptz default now()
);

create or replace function auth.uid() returns uuid
language sql stable
as $$
    select nullif(
        coalesce(current_setting('request.jwt.claim.sub', true),
                 (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')),
        '')::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
    select nullif(
        coalesce(current_setting('request.jwt.claim.role', true),
                 (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')),
        '')::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
    select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                    nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;

grant execute on all functions in schema auth to anon, authenticated, service_role;

grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version     text primary key,
    statements  text[],
    name        text
);
