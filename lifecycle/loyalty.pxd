# C types for the loyalty rules (lifecycle/loyalty.py).
cimport cython
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

@cython.locals(needed=Py_ssize_t, high_repeat=bint, high_attitude=bint)
cpdef tuple loyalty_type_of(CustomerState state, long long now, str attitude, RuleSettings rules)

cpdef str earned_tier(long long points, RuleSettings rules)

cpdef tuple tier_of(CustomerState state, bint reviewing, RuleSettings rules)

from lifecycle.stage cimport purchases_within
