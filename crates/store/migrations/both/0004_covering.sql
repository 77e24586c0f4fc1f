-- Both backends run this one file. The value indexes carry the resource's rid as their last key
-- (and for dates the other end of the range), so listing a parameter's matching resources reads
-- the index alone (without it every entry cost a visit to its table row: 9,309 for one LOINC
-- code at 1,000 patients), and for one value lists them in rid order, the page order a search
-- can stop early in.
DROP INDEX idx_string_v0;
CREATE INDEX idx_string_v0 ON idx_string (tenant, pid, normalized, rid);
DROP INDEX idx_token_v0;
CREATE INDEX idx_token_v0 ON idx_token (tenant, pid, code, system, rid);
DROP INDEX idx_reference_v0;
CREATE INDEX idx_reference_v0 ON idx_reference (tenant, pid, target_id, target_type, rid);
DROP INDEX idx_reference_url;
CREATE INDEX idx_reference_url ON idx_reference (tenant, pid, url, rid) WHERE url <> '';
DROP INDEX idx_date_v0;
CREATE INDEX idx_date_v0 ON idx_date (tenant, pid, low, high, rid);
DROP INDEX idx_date_v1;
CREATE INDEX idx_date_v1 ON idx_date (tenant, pid, high, low, rid);
DROP INDEX idx_number_v0;
CREATE INDEX idx_number_v0 ON idx_number (tenant, pid, value, rid);
DROP INDEX idx_uri_v0;
CREATE INDEX idx_uri_v0 ON idx_uri (tenant, pid, uri, rid);
-- Chains, `_has`, `$everything` and `_include` follow a resource's references by its rid: with
-- the target in the rid index they read no table row.
DROP INDEX idx_reference_rid;
CREATE INDEX idx_reference_rid ON idx_reference (rid, pid, target_type, target_id);
