# C types for folding events into facts (lifecycle/facts.py).
cimport cython
from lifecycle cimport occasions
from lifecycle.rule_settings cimport RuleSettings
from lifecycle.state cimport CustomerState

@cython.locals(changed=Py_ssize_t)
cpdef Py_ssize_t apply_facts(CustomerState state, object event, long long at, RuleSettings rules,
                             tuple money=*) except -1
@cython.locals(revenue=cython.longlong, value=cython.longlong, step=cython.longlong, largest=cython.longlong)
cpdef tuple check_bounds(CustomerState state, object event, RuleSettings rules)
cpdef tuple priced(object event, RuleSettings rules)
cdef _active(CustomerState state, long long at)
@cython.locals(before=bint)
cdef Py_ssize_t _purchase(CustomerState state, object event, long long at, RuleSettings rules,
                          tuple money) except -1
cdef object _held(CustomerState state, object order_id, RuleSettings rules)
@cython.locals(per_point=cython.longlong, ledger=list)
cdef _book(CustomerState state, object at, object value, object revenue, RuleSettings rules)
@cython.locals(times=list, index=Py_ssize_t)
cdef _count_purchase(CustomerState state, object order_id, long long at, RuleSettings rules)
@cython.locals(times=list, index=Py_ssize_t, at=cython.longlong)
cdef _uncount_purchase(CustomerState state, object order_id, RuleSettings rules)
@cython.locals(recent=list)
cpdef object usual_gap(list times, RuleSettings rules)
@cython.locals(value_since=cython.longlong, keep_since=cython.longlong, period=cython.longlong, ledger=list,
               gone=Py_ssize_t, drop=Py_ssize_t, referrals=Py_ssize_t, times=list)
cpdef expire(CustomerState state, RuleSettings rules)
@cython.locals(refundable_since=cython.longlong)
cpdef drop_unrefundable(CustomerState state, RuleSettings rules)
