# C types for the bulk replay's unit of work (lifecycle/customer_fold.py).
cimport cython
from lifecycle.engine cimport LifecycleEngine
from lifecycle.state cimport CustomerState

cdef class PartitionClocks:
    cdef public list sequence, times, running_max, events

    cpdef Py_ssize_t before(self, object order)
    cpdef object latest(self, Py_ssize_t count)

@cython.locals(state=CustomerState, changed=bint, seen=Py_ssize_t, upto=Py_ssize_t)
cpdef fold_customer(LifecycleEngine engine, str customer_id, events, PartitionClocks clocks, failed=*)

@cython.locals(index=Py_ssize_t)
cdef _due_clocks(LifecycleEngine engine, CustomerState state, PartitionClocks clocks, Py_ssize_t start,
                 Py_ssize_t stop, out)
