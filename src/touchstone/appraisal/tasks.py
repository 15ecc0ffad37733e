"""Jobs of the appraisal module."""
