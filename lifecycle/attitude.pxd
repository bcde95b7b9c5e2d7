# C types for the attitude rules (lifecycle/attitude.py).
cimport cython
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

@cython.locals(since=cython.longlong, score=cython.longlong)
cpdef str attitude_of(CustomerState state, long long now, RuleSettings rules)

@cython.locals(window=cython.longlong)
cpdef object next_attitude_change(CustomerState state, long long now, RuleSettings rules)
