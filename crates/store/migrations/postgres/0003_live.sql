-- Searches only ever look at live resources: an index of those alone lets a count of a type
-- (`Observation?_summary=count`) read the index without visiting the table rows, and skips the
-- deleted ones everywhere else.
DROP INDEX resources_type;
CREATE INDEX resources_live ON resources (tenant, resource_type, rid) WHERE deleted = FALSE;
