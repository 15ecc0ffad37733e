"""Tables of the appraisal module: tenant tables carry org_id and get row-level security."""
