-- Search indexes (the other backend's 0002 has the same tables; keep them in step).

-- Resources get a compact surrogate key, `rid`, that every index row points at.
ALTER TABLE resources ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE resources ADD CONSTRAINT resources_rid UNIQUE (rid);
CREATE INDEX resources_type ON resources (tenant, resource_type, rid);
CREATE INDEX resources_updated ON resources (tenant, resource_type, last_updated);
DROP TABLE idx_token;

-- Index rows name their (resource type, parameter) by a small key: rows are shorter and
-- compare faster than with both names spelled out in every row and index entry.
CREATE TABLE search_keys (
    pid           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    pid                BIGINT NOT NULL,
    normalized         TEXT COLLATE "C" NOT NULL,
    exact              TEXT COLLATE "C" NOT NULL,
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_string_v0 ON idx_string (tenant, pid, normalized);
CREATE INDEX idx_string_rid ON idx_string (rid, pid);
CREATE TABLE idx_token (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    system             TEXT COLLATE "C" NOT NULL DEFAULT '',
    code               TEXT COLLATE "C" NOT NULL DEFAULT '',
    text               TEXT COLLATE "C" NOT NULL DEFAULT '',
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_token_v0 ON idx_token (tenant, pid, code, system);
CREATE INDEX idx_token_rid ON idx_token (rid, pid);
CREATE TABLE idx_reference (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    target_type        TEXT COLLATE "C" NOT NULL DEFAULT '',
    target_id          TEXT COLLATE "C" NOT NULL DEFAULT '',
    version            TEXT COLLATE "C" NOT NULL DEFAULT '',
    url                TEXT COLLATE "C" NOT NULL DEFAULT '',
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_reference_v0 ON idx_reference (tenant, pid, target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (tenant, pid, url) WHERE url <> '';
CREATE INDEX idx_reference_rid ON idx_reference (rid, pid);
CREATE TABLE idx_date (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    low                BIGINT NOT NULL,
    high               BIGINT NOT NULL,
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_date_v0 ON idx_date (tenant, pid, low);
CREATE INDEX idx_date_v1 ON idx_date (tenant, pid, high);
CREATE INDEX idx_date_rid ON idx_date (rid, pid);
CREATE TABLE idx_number (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    value              DOUBLE PRECISION NOT NULL,
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_number_v0 ON idx_number (tenant, pid, value);
CREATE INDEX idx_number_rid ON idx_number (rid, pid);
CREATE TABLE idx_quantity (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    low                DOUBLE PRECISION NOT NULL,
    high               DOUBLE PRECISION NOT NULL,
    system             TEXT COLLATE "C",
    code               TEXT COLLATE "C",
    unit               TEXT COLLATE "C",
    canonical_low      DOUBLE PRECISION,
    canonical_high     DOUBLE PRECISION,
    canonical_key      TEXT COLLATE "C",
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_quantity_v0 ON idx_quantity (tenant, pid, canonical_key, canonical_low);
CREATE INDEX idx_quantity_v1 ON idx_quantity (tenant, pid, code, low);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid, pid);
CREATE TABLE idx_uri (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    uri                TEXT COLLATE "C" NOT NULL,
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_uri_v0 ON idx_uri (tenant, pid, uri);
CREATE INDEX idx_uri_rid ON idx_uri (rid, pid);
CREATE TABLE idx_composite (
    tenant             TEXT NOT NULL,
    pid                BIGINT NOT NULL,
    p1_system          TEXT COLLATE "C",
    p1_code            TEXT COLLATE "C",
    p1_low             DOUBLE PRECISION,
    p1_high            DOUBLE PRECISION,
    p1_canonical_low   DOUBLE PRECISION,
    p1_canonical_high  DOUBLE PRECISION,
    p1_key             TEXT COLLATE "C",
    p2_system          TEXT COLLATE "C",
    p2_code            TEXT COLLATE "C",
    p2_low             DOUBLE PRECISION,
    p2_high            DOUBLE PRECISION,
    p2_canonical_low   DOUBLE PRECISION,
    p2_canonical_high  DOUBLE PRECISION,
    p2_key             TEXT COLLATE "C",
    p3_system          TEXT COLLATE "C",
    p3_code            TEXT COLLATE "C",
    p3_low             DOUBLE PRECISION,
    p3_high            DOUBLE PRECISION,
    p3_canonical_low   DOUBLE PRECISION,
    p3_canonical_high  DOUBLE PRECISION,
    p3_key             TEXT COLLATE "C",
    rid                BIGINT NOT NULL
);
CREATE INDEX idx_composite_v0 ON idx_composite (tenant, pid, p1_code, p1_system);
CREATE INDEX idx_composite_rid ON idx_composite (rid, pid);
-- References looked up from the target side (_revinclude, _has, compartments, $everything).
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_type, target_id);

-- Full text for _text (narrative) and _content (every string).
CREATE TABLE idx_text (
    tenant        TEXT     NOT NULL,
    narrative     TSVECTOR NOT NULL,
    content       TSVECTOR NOT NULL,
    rid           BIGINT   PRIMARY KEY
);
CREATE INDEX idx_text_narrative ON idx_text USING GIN (narrative);
CREATE INDEX idx_text_content ON idx_text USING GIN (content);

-- Settings kept in the database: the index version (a change re-indexes) and job progress.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
