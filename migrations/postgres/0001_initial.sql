-- 0001_initial (PostgreSQL): tenants, keys, datasets + chunked blobs, models + versions,
-- batch ledger, components, jobs (the queue), analyses + their components.
-- Ids are text UUIDs made by the server; timestamps are timestamptz; JSON is stored as text.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_sha256   text NOT NULL UNIQUE,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE datasets (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text NOT NULL,
    examples     bigint NOT NULL,
    features     bigint NOT NULL,
    classes      bigint NOT NULL,
    image_shape  text,
    checksum     text NOT NULL DEFAULT '',
    byte_size    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL
);
CREATE INDEX datasets_tenant ON datasets (tenant_id, created_at, id);

CREATE TABLE dataset_blobs (
    dataset_id  text NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (dataset_id, seq)
);

CREATE TABLE models (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    kind          text NOT NULL,
    architecture  text NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX models_tenant ON models (tenant_id, created_at, id);

CREATE TABLE model_versions (
    model_id        text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version         bigint NOT NULL,
    parent_version  bigint,
    reason          text NOT NULL CHECK (reason IN ('create', 'train', 'task', 'forget', 'perturb')),
    metrics         text NOT NULL DEFAULT '{}',
    weights         bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE batch_ledger (
    id           text PRIMARY KEY,
    model_id     text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version      bigint NOT NULL,
    task         bigint NOT NULL,
    epoch        bigint NOT NULL,
    batch_index  bigint NOT NULL,
    examples     bytea NOT NULL,
    windows      text NOT NULL,
    dataset_id   text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX batch_ledger_model ON batch_ledger (model_id, version, task, epoch, batch_index);

CREATE TABLE components (
    model_id      text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version       bigint NOT NULL,
    block         bigint NOT NULL,
    column_index  bigint NOT NULL,
    provenance    text NOT NULL,
    state         text NOT NULL CHECK (state IN ('active', 'reset')),
    norms         text NOT NULL DEFAULT '{}',
    PRIMARY KEY (model_id, version, block, column_index)
);

CREATE TABLE jobs (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind              text NOT NULL,
    params            text NOT NULL,
    dataset_id        text,
    model_id          text,
    state             text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress          text,
    result            text,
    error             text,
    attempts          bigint NOT NULL DEFAULT 0,
    max_attempts      bigint NOT NULL DEFAULT 3,
    cancel_requested  boolean NOT NULL DEFAULT false,
    lease_owner       text,
    lease_expires_at  timestamptz,
    heartbeat_at      timestamptz,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz
);
CREATE INDEX jobs_queue ON jobs (state, created_at, id);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at, id);
CREATE INDEX jobs_dataset ON jobs (dataset_id) WHERE dataset_id IS NOT NULL;
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';

CREATE TABLE analyses (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    model_id       text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    model_version  bigint NOT NULL,
    dataset_id     text,
    kind           text NOT NULL,
    params         text NOT NULL,
    state          text NOT NULL,
    summary        text,
    job_id         text,
    created_at     timestamptz NOT NULL
);
CREATE INDEX analyses_tenant ON analyses (tenant_id, created_at, id);

CREATE TABLE analysis_components (
    analysis_id      text NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    component_index  bigint NOT NULL,
    pseudo_fisher    bytea NOT NULL,
    coefficients     bytea,
    top_examples     text NOT NULL,
    summary          text NOT NULL DEFAULT '{}',
    PRIMARY KEY (analysis_id, component_index)
);
