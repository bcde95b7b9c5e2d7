"""The catalog analysts query: each table's definition and how a batch writes it
(customers, lifecycle transitions, profiles, dead letters, value movements and
estimates, policies, engine commits), and the segment views over them."""
