# The typed layout of `lifecycle.rule_settings.RuleSettings` (see its module text).

cdef class RuleSettings:
    cdef public object policy
    cdef public long long loyal_min_purchases, loyal_window, advocate_window, advocate_min_nps
    cdef public long long high_repeat_purchases, loyalty_window
    cdef public long long rhythm_min_purchases, rhythm_purchases_kept, rhythm_floor
    cdef public double drowsy_gaps, half_asleep_gaps, dormant_gaps
    cdef public long long drowsy, half_asleep, dormant, churned
    cdef public long long attitude_window, promoter_nps, detractor_nps, satisfied_csat, dissatisfied_csat
    cdef public long long minor_units_per_point, review_every, silver_points, gold_points, platinum_points
    cdef public dict rates_to_base
    cdef public long long value_window, refund_window, acquisition_cost_minor
    cdef public long long normal_band_min_minor, key_band_min_minor
    cdef public double high_margin_ratio
    cdef public long long occasion, purchase_window
