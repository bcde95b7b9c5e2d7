"""Personal data: sealed per customer before any log, the customers' keys and the master
key that wraps them, the roles that say who may read what, and the access log of every
read in clear."""
