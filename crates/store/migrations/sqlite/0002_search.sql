-- Search indexes (the other backend's 0002 has the same tables; keep them in step).

-- Resources get a compact surrogate key, `rid`, that every index row points at.
CREATE TABLE resources_new (
    rid           INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    UNIQUE (tenant, resource_type, id)
);
INSERT INTO resources_new (tenant, resource_type, id, version, deleted, last_updated)
    SELECT tenant, resource_type, id, version, deleted, last_updated FROM resources;
DROP TABLE resources;
ALTER TABLE resources_new RENAME TO resources;
CREATE INDEX resources_type ON resources (tenant, resource_type, rid);
CREATE INDEX resources_updated ON resources (tenant, resource_type, last_updated);
CREATE INDEX resources_id ON resources (tenant, id);
DROP TABLE idx_token;

-- One table per kind of value: (tenant, type, param, values…, rid). The first index serves
-- the searches, the second the per-resource lookups (sorting, :missing, rewrites).
CREATE TABLE idx_string (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    normalized           TEXT NOT NULL,
    exact                TEXT NOT NULL,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_string_v0 ON idx_string (tenant, resource_type, param, normalized);
CREATE INDEX idx_string_rid ON idx_string (rid, param);
CREATE TABLE idx_token (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    system               TEXT,
    code                 TEXT,
    text                 TEXT,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_token_v0 ON idx_token (tenant, resource_type, param, code, system);
CREATE INDEX idx_token_v1 ON idx_token (tenant, resource_type, param, text) WHERE text IS NOT NULL;
CREATE INDEX idx_token_rid ON idx_token (rid, param);
CREATE TABLE idx_reference (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    target_type          TEXT,
    target_id            TEXT,
    version              TEXT,
    url                  TEXT,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_reference_v0 ON idx_reference (tenant, resource_type, param, target_id, target_type);
CREATE INDEX idx_reference_v1 ON idx_reference (tenant, resource_type, param, url) WHERE url IS NOT NULL;
CREATE INDEX idx_reference_rid ON idx_reference (rid, param);
CREATE TABLE idx_date (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    low                  BIGINT NOT NULL,
    high                 BIGINT NOT NULL,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_date_v0 ON idx_date (tenant, resource_type, param, low);
CREATE INDEX idx_date_v1 ON idx_date (tenant, resource_type, param, high);
CREATE INDEX idx_date_rid ON idx_date (rid, param);
CREATE TABLE idx_number (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    value                REAL NOT NULL,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_number_v0 ON idx_number (tenant, resource_type, param, value);
CREATE INDEX idx_number_rid ON idx_number (rid, param);
CREATE TABLE idx_quantity (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    low                  REAL NOT NULL,
    high                 REAL NOT NULL,
    system               TEXT,
    code                 TEXT,
    unit                 TEXT,
    canonical_low        REAL,
    canonical_high       REAL,
    canonical_key        TEXT,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_quantity_v0 ON idx_quantity (tenant, resource_type, param, canonical_key, canonical_low);
CREATE INDEX idx_quantity_v1 ON idx_quantity (tenant, resource_type, param, code, low);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid, param);
CREATE TABLE idx_uri (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    uri                  TEXT NOT NULL,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_uri_v0 ON idx_uri (tenant, resource_type, param, uri);
CREATE INDEX idx_uri_rid ON idx_uri (rid, param);
CREATE TABLE idx_composite (
    tenant               TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    param                TEXT NOT NULL,
    p1_system            TEXT,
    p1_code              TEXT,
    p1_low               REAL,
    p1_high              REAL,
    p1_canonical_low     REAL,
    p1_canonical_high    REAL,
    p1_key               TEXT,
    p2_system            TEXT,
    p2_code              TEXT,
    p2_low               REAL,
    p2_high              REAL,
    p2_canonical_low     REAL,
    p2_canonical_high    REAL,
    p2_key               TEXT,
    p3_system            TEXT,
    p3_code              TEXT,
    p3_low               REAL,
    p3_high              REAL,
    p3_canonical_low     REAL,
    p3_canonical_high    REAL,
    p3_key               TEXT,
    rid                  INTEGER NOT NULL
);
CREATE INDEX idx_composite_v0 ON idx_composite (tenant, resource_type, param, p1_code, p1_system);
CREATE INDEX idx_composite_rid ON idx_composite (rid, param);
-- References looked up from the target side (_revinclude, _has, $everything).
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_type, target_id);

-- Full text for _text (narrative) and _content (every string).
CREATE VIRTUAL TABLE idx_text USING fts5(narrative, content, content='', contentless_delete=1);

-- Settings kept in the database: the index version (a change re-indexes) and job progress.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
