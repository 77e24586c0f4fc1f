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
DROP TABLE idx_token;

-- Index rows name their (resource type, parameter) by a small key: rows are shorter and
-- compare faster than with both names spelled out in every row and index entry.
CREATE TABLE search_keys (
    pid           INTEGER PRIMARY KEY,
    resource_type TEXT NOT NULL,
    param         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    UNIQUE (resource_type, param)
);

-- One table per kind of value: (tenant, key, values…, rid). The first index serves the
-- searches, the second the per-resource lookups (sorting, :missing, rewrites). An absent token
-- or reference part is '' (never NULL), so the same SQL serves both backends.
CREATE TABLE idx_string (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    normalized         TEXT NOT NULL,
    exact              TEXT NOT NULL,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_string_v0 ON idx_string (tenant, pid, normalized);
CREATE INDEX idx_string_rid ON idx_string (rid, pid);
CREATE TABLE idx_token (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    system             TEXT NOT NULL DEFAULT '',
    code               TEXT NOT NULL DEFAULT '',
    text               TEXT NOT NULL DEFAULT '',
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_token_v0 ON idx_token (tenant, pid, code, system);
CREATE INDEX idx_token_rid ON idx_token (rid, pid);
CREATE TABLE idx_reference (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    target_type        TEXT NOT NULL DEFAULT '',
    target_id          TEXT NOT NULL DEFAULT '',
    version            TEXT NOT NULL DEFAULT '',
    url                TEXT NOT NULL DEFAULT '',
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_reference_v0 ON idx_reference (tenant, pid, target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (tenant, pid, url) WHERE url <> '';
CREATE INDEX idx_reference_rid ON idx_reference (rid, pid);
CREATE TABLE idx_date (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    low                BIGINT NOT NULL,
    high               BIGINT NOT NULL,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_date_v0 ON idx_date (tenant, pid, low);
CREATE INDEX idx_date_v1 ON idx_date (tenant, pid, high);
CREATE INDEX idx_date_rid ON idx_date (rid, pid);
CREATE TABLE idx_number (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    value              REAL NOT NULL,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_number_v0 ON idx_number (tenant, pid, value);
CREATE INDEX idx_number_rid ON idx_number (rid, pid);
CREATE TABLE idx_quantity (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    low                REAL NOT NULL,
    high               REAL NOT NULL,
    system             TEXT,
    code               TEXT,
    unit               TEXT,
    canonical_low      REAL,
    canonical_high     REAL,
    canonical_key      TEXT,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_quantity_v0 ON idx_quantity (tenant, pid, canonical_key, canonical_low);
CREATE INDEX idx_quantity_v1 ON idx_quantity (tenant, pid, code, low);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid, pid);
CREATE TABLE idx_uri (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    uri                TEXT NOT NULL,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_uri_v0 ON idx_uri (tenant, pid, uri);
CREATE INDEX idx_uri_rid ON idx_uri (rid, pid);
CREATE TABLE idx_composite (
    tenant             TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    p1_system          TEXT,
    p1_code            TEXT,
    p1_low             REAL,
    p1_high            REAL,
    p1_canonical_low   REAL,
    p1_canonical_high  REAL,
    p1_key             TEXT,
    p2_system          TEXT,
    p2_code            TEXT,
    p2_low             REAL,
    p2_high            REAL,
    p2_canonical_low   REAL,
    p2_canonical_high  REAL,
    p2_key             TEXT,
    p3_system          TEXT,
    p3_code            TEXT,
    p3_low             REAL,
    p3_high            REAL,
    p3_canonical_low   REAL,
    p3_canonical_high  REAL,
    p3_key             TEXT,
    rid                INTEGER NOT NULL
);
CREATE INDEX idx_composite_v0 ON idx_composite (tenant, pid, p1_code, p1_system);
CREATE INDEX idx_composite_rid ON idx_composite (rid, pid);
-- References looked up from the target side (_revinclude, _has, compartments, $everything).
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_type, target_id);

-- Full text for _text (narrative) and _content (every string).
CREATE VIRTUAL TABLE idx_text USING fts5(narrative, content, content='', contentless_delete=1);

-- Settings kept in the database: the index version (a change re-indexes) and job progress.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
