# C types for the value rules (lifecycle/value.py).
cimport cython
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

cpdef long long clv_of(CustomerState state, double factor, RuleSettings rules)

cpdef tuple value_band_of(long long clv_minor, RuleSettings rules)

@cython.locals(revenue=cython.longlong, high_margin=bint)
cpdef tuple relationship_level_of(CustomerState state, str band, RuleSettings rules)

cpdef object next_value_change(CustomerState state, long long now, RuleSettings rules)
