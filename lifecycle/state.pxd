# The typed layout of `lifecycle.state.CustomerState`: C fields for the compiled core.
# The field list, its order and the defaults are the `.py` file's (`StoredState`); a test
# keeps the three in step.

cdef class CustomerState:
    cdef public str customer_id
    cdef public long long now
    cdef public object first_event_at
    cdef public object last_event_at
    cdef public object last_active_at
    cdef public long long events
    cdef public list recent_event_ids
    cdef public long long duplicates_ignored
    cdef public bint showed_intent
    cdef public bint erased
    cdef public dict orders
    cdef public long long purchases
    cdef public list purchase_times
    cdef public list purchase_orders
    cdef public object usual_gap
    cdef public long long historical_value_minor
    cdef public long long revenue_with_margin_minor
    cdef public long long margin_minor
    cdef public list ledger
    cdef public long long current_value_minor
    cdef public long long points
    cdef public long long unpriced_purchases
    cdef public dict open_complaints
    cdef public list closed_complaints
    cdef public dict early_resolutions
    cdef public long long complaints_filed
    cdef public long long complaints_resolved
    cdef public long long recoveries_satisfied
    cdef public long long resolve_seconds_total
    cdef public object last_recovery_at
    cdef public object last_recovery_satisfied
    cdef public object latest_nps
    cdef public object latest_nps_at
    cdef public object latest_csat
    cdef public object latest_csat_at
    cdef public list referral_times
    cdef public list programmes
    cdef public object member_since
    cdef public object next_review_at
    cdef public str stage
    cdef public str activity
    cdef public str attitude
    cdef public str loyalty_type
    cdef public str loyalty_tier
    cdef public str value_band
    cdef public str relationship_level
    cdef public long long clv_minor
    cdef public long long win_backs
    cdef public long long sequence
    cdef public object next_deadline
    cdef public str chain_head
    cdef public long long historical_revenue_minor
    cdef public long long purchase_occasions
    cdef public list sources
    cdef public dict consents
