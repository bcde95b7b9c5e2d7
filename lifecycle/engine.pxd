# The engine as a C type: its methods call each other and the rules as C functions.
cimport cython
from lifecycle.activity cimport activity_of, next_activity_change, reference_time, thresholds
from lifecycle.attitude cimport attitude_of, next_attitude_change
from lifecycle.loyalty cimport loyalty_type_of, tier_of
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.stage cimport next_referral_end, next_window_end, stage_of
from lifecycle.state cimport CustomerState
from lifecycle.value cimport clv_of, next_value_change, relationship_level_of, value_band_of


cdef class LifecycleEngine:
    cdef public object policy
    cdef public RuleSettings rules
    cdef dict _clv_factors
    cdef dict _limits
    cdef public object booked
    cdef public list payloads

    @cython.locals(passed=bint, due=bint, asleep=bint, folded=Py_ssize_t, reviewing=bint)
    cpdef list on_event(self, CustomerState state, object event, object at=*)
    cpdef list on_clock(self, CustomerState state, object clock)
    cdef bint _seen(self, CustomerState state, object event) except -1
    cdef bint _asleep_at(self, CustomerState state, long long at) except -1
    cdef tuple _limits_of(self, object usual_gap)
    @cython.locals(passed=bint, deadline=cython.longlong)
    cdef bint _pass_deadlines(self, CustomerState state, long long until, list out) except -1
    cdef bint _advance(self, CustomerState state, long long at) except -1
    cdef bint _review(self, CustomerState state) except -1
    @cython.locals(now=cython.longlong, silent_since=cython.longlong, index=Py_ssize_t, decided=tuple, before=tuple,
                   activity=tuple, band=tuple)
    cdef _decide(self, CustomerState state, tuple cause, list out, bint reviewing, bint win_back)
    cdef _changed(self, CustomerState state, str dimension, str before, str after, str rule, tuple cause, str prefix,
                  dict facts)
    @cython.locals(now=cython.longlong)
    cdef object _deadline(self, CustomerState state, object activity_change)
