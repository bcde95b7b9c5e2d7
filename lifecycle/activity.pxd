# C types for the activity rules (lifecycle/activity.py).
cimport cython
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

cpdef long long reference_time(CustomerState state)

@cython.locals(churned=cython.longlong, gap=cython.longlong, drowsy=cython.longlong, half_asleep=cython.longlong,
               dormant=cython.longlong)
cpdef tuple thresholds(object usual_gap, RuleSettings rules)

@cython.locals(drowsy=cython.longlong, half_asleep=cython.longlong, dormant=cython.longlong, churned=cython.longlong,
               level=Py_ssize_t)
cpdef tuple activity_of(long long elapsed, tuple limits)

@cython.locals(limit=cython.longlong)
cpdef object next_activity_change(long long start, long long now, tuple limits)
