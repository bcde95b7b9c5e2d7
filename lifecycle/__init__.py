"""The rules: from a customer's events to their stage, activity, loyalty and value.

The modules named in `COMPILED` are the typed core: setup.py compiles them with
Cython from these very files (pure-Python mode), and Python takes the compiled module
where it is built, the source where not. Either way the rules are written once, here.
"""

COMPILED = ("activity", "attitude", "customer_fold", "deadlines", "engine", "facts", "loyalty", "occasions",
            "partition_time", "reasons", "rule_settings", "stage", "state", "value")
"""The hot path of every event, live and replayed."""
