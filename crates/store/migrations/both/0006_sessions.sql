-- The identity provider's state besides accounts. Times are milliseconds since the epoch, as in
-- accounts. Every table is keyed by tenant first, like everything else the store holds.

-- Browser sessions. Only the digest of the cookie's token is kept, so a copy of the database
-- lets no one in. A revoked or expired session stays until the purge removes it.
CREATE TABLE sessions (
    tenant     TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    token_hash TEXT   NOT NULL,
    account_id TEXT   NOT NULL,
    stage      TEXT   NOT NULL,
    created    BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    expires    BIGINT NOT NULL,
    user_agent TEXT,
    address    TEXT,
    revoked    BIGINT,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, token_hash)
);
CREATE INDEX sessions_account ON sessions (tenant, account_id);
-- The purge runs across tenants: these let it find ended sessions without reading them all.
CREATE INDEX sessions_expires ON sessions (expires);
CREATE INDEX sessions_revoked ON sessions (revoked) WHERE revoked IS NOT NULL;

-- One second factor per account. `version` makes the use of a TOTP step or a backup code a
-- compare-and-set, so one code presented twice at once lets one request in.
CREATE TABLE second_factors (
    tenant       TEXT    NOT NULL,
    account_id   TEXT    NOT NULL,
    totp_secret  TEXT    NOT NULL,
    confirmed    BOOLEAN NOT NULL,
    last_step    BIGINT,
    backup_codes TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    created      BIGINT  NOT NULL,
    PRIMARY KEY (tenant, account_id)
);

-- Failed attempts per key (an email's digest, a source address), for lockout.
CREATE TABLE auth_failures (
    tenant TEXT   NOT NULL,
    key    TEXT   NOT NULL,
    count  BIGINT NOT NULL,
    last   BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- The audit trail of sign-ins, sign-outs and credential changes, read newest first.
CREATE TABLE auth_events (
    tenant     TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    account_id TEXT,
    address    TEXT,
    detail     TEXT   NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX auth_events_at ON auth_events (tenant, at);
CREATE INDEX auth_events_account ON auth_events (tenant, account_id, at);
