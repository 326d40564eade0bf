-- 0001_initial (SQLite): tenants, keys, datasets + chunked blobs, models + versions,
-- batch ledger, components, jobs (the queue), analyses + their components.
-- Ids are text UUIDs made by the server; timestamps are integer microseconds since 1970 UTC;
-- JSON is stored as text; booleans are 0/1.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  integer NOT NULL
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key_sha256   text NOT NULL UNIQUE,
    label        text NOT NULL DEFAULT '',
    created_at   integer NOT NULL,
    revoked_at   integer
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE datasets (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text NOT NULL,
    examples     integer NOT NULL,
    features     integer NOT NULL,
    classes      integer NOT NULL,
    image_shape  text,
    checksum     text NOT NULL DEFAULT '',
    byte_size    integer NOT NULL DEFAULT 0,
    created_at   integer NOT NULL
);
CREATE INDEX datasets_tenant ON datasets (tenant_id, created_at, id);

CREATE TABLE dataset_blobs (
    dataset_id  text NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    data        blob NOT NULL,
    PRIMARY KEY (dataset_id, seq)
);

CREATE TABLE models (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          text NOT NULL,
    kind          text NOT NULL,
    architecture  text NOT NULL,
    created_at    integer NOT NULL
);
CREATE INDEX models_tenant ON models (tenant_id, created_at, id);

CREATE TABLE model_versions (
    model_id        text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version         integer NOT NULL,
    parent_version  integer,
    reason          text NOT NULL CHECK (reason IN ('create', 'train', 'task', 'forget', 'perturb')),
    metrics         text NOT NULL DEFAULT '{}',
    weights         blob NOT NULL,
    created_at      integer NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE batch_ledger (
    id           text PRIMARY KEY,
    model_id     text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version      integer NOT NULL,
    task         integer NOT NULL,
    epoch        integer NOT NULL,
    batch_index  integer NOT NULL,
    examples     blob NOT NULL,
    windows      text NOT NULL,
    dataset_id   text,
    created_at   integer NOT NULL
);
CREATE INDEX batch_ledger_model ON batch_ledger (model_id, version, task, epoch, batch_index);

CREATE TABLE components (
    model_id      text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version       integer NOT NULL,
    block         integer NOT NULL,
    column_index  integer NOT NULL,
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
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3,
    cancel_requested  integer NOT NULL DEFAULT 0,
    lease_owner       text,
    lease_expires_at  integer,
    heartbeat_at      integer,
    created_at        integer NOT NULL,
    started_at        integer,
    finished_at       integer
);
CREATE INDEX jobs_queue ON jobs (state, created_at, id);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at, id);
CREATE INDEX jobs_dataset ON jobs (dataset_id) WHERE dataset_id IS NOT NULL;
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';

CREATE TABLE analyses (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    model_id       text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    model_version  integer NOT NULL,
    dataset_id     text,
    kind           text NOT NULL,
    params         text NOT NULL,
    state          text NOT NULL,
    summary        text,
    job_id         text,
    created_at     integer NOT NULL
);
CREATE INDEX analyses_tenant ON analyses (tenant_id, created_at, id);

CREATE TABLE analysis_components (
    analysis_id      text NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
    component_index  integer NOT NULL,
    pseudo_fisher    blob NOT NULL,
    coefficients     blob,
    top_examples     text NOT NULL,
    summary          text NOT NULL DEFAULT '{}',
    PRIMARY KEY (analysis_id, component_index)
);
