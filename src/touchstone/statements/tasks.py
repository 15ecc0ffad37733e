"""Jobs of the statements module."""
