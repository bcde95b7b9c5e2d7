"""What readers get: the locked-down query, the report, the Parquet export, the dead
letter summary, and the roles with the snapshot each partner reads."""
