-- Identity provider accounts. Not FHIR resources: they hold credentials, which no FHIR read,
-- search or export may ever return. `fhir_user` links an account to its Patient, Practitioner
-- or RelatedPerson. Email is stored as the caller normalised it (lower case), so uniqueness is
-- case-insensitive.
CREATE TABLE accounts (
    tenant         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    email          TEXT    NOT NULL,
    email_verified BOOLEAN NOT NULL,
    password_hash  TEXT,
    roles          TEXT    NOT NULL,
    fhir_user      TEXT,
    status         TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    created        BIGINT  NOT NULL,
    updated        BIGINT  NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, email)
);
