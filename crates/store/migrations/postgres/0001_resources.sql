-- Current state: one row per resource, pointing at its newest version.
CREATE TABLE resources (
    tenant        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    deleted       BOOLEAN NOT NULL,
    last_updated  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, resource_type, id)
);

-- Every version, bodies kept once. `sequence` orders all writes (history, paging cursors).
CREATE TABLE versions (
    sequence      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        TEXT   NOT NULL,
    resource_type TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    method        TEXT   NOT NULL,
    body          TEXT,
    UNIQUE (tenant, resource_type, id, version)
);
CREATE INDEX versions_tenant_seq ON versions (tenant, sequence);
CREATE INDEX versions_type_seq ON versions (tenant, resource_type, sequence);
CREATE INDEX versions_time ON versions (tenant, last_updated);

CREATE TABLE idx_token (
    tenant        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,
    code          TEXT NOT NULL
);
CREATE INDEX idx_token_lookup ON idx_token (tenant, resource_type, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (tenant, resource_type, id);
