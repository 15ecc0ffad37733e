"""Tables of the statements module: tenant tables carry org_id and get row-level security."""
