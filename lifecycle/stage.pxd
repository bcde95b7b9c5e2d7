# C types for the ladder's rules (lifecycle/stage.py).
cimport cython
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

cpdef Py_ssize_t purchases_within(CustomerState state, long long now, long long window, RuleSettings rules,
                                  enough=*)

@cython.locals(needed=Py_ssize_t, loyal=bint)
cpdef tuple stage_of(CustomerState state, long long now, str attitude, RuleSettings rules)

cdef bint _advocates(CustomerState state, long long now, RuleSettings rules)

cpdef object next_window_end(CustomerState state, long long now, long long window, RuleSettings rules)

cpdef object next_referral_end(CustomerState state, RuleSettings rules)

from lifecycle cimport occasions
