# C types for the occasion helpers: purchase times are int64 seconds, indexes C sizes.
cimport cython

@cython.locals(bucket=cython.longlong, neighbour=cython.longlong)
cpdef bint shares_occasion(list times, Py_ssize_t index, long long at, long long period)

@cython.locals(start=Py_ssize_t, index=Py_ssize_t, limit=Py_ssize_t, count=Py_ssize_t, at=cython.longlong,
               last=cython.longlong, bucket=cython.longlong)
cpdef Py_ssize_t within(list times, long long since, long long period, enough=*)

@cython.locals(index=Py_ssize_t, at=cython.longlong, bucket=cython.longlong)
cpdef object next_window_end(list times, long long since, long long window, long long period)

@cython.locals(index=Py_ssize_t, at=cython.longlong, this=cython.longlong, bucket=cython.longlong)
cpdef list recent_starts(list times, Py_ssize_t count, long long period)

@cython.locals(seen=Py_ssize_t, index=Py_ssize_t, at=cython.longlong, bucket=cython.longlong)
cpdef Py_ssize_t start_of_latest(list times, Py_ssize_t count, long long period)

@cython.locals(earlier=cython.longlong, at=cython.longlong)
cpdef Py_ssize_t whole(list times, Py_ssize_t index, long long period)
