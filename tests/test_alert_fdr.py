"""Benjamini–Hochberg against scipy's `false_discovery_control` and the step-up definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from triage.alerts.fdr import bh_adjusted, bh_reject

p_values = st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=300)
# Ties and exact duplicates are where ordering bugs hide.
tied = st.lists(st.sampled_from([0.0, 1e-8, 0.001, 0.01, 0.04, 0.05, 0.2, 1.0]), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.one_of(p_values, tied))
def test_adjusted_p_values_equal_scipy(values):
    expected = stats.false_discovery_control(np.array(values), method="bh")
    np.testing.assert_allclose(bh_adjusted(values), expected, rtol=1e-12, atol=0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(p_values, tied), st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_rejections_follow_the_step_up_rule(values, q):
    p = np.array(values)
    m = p.size
    order = np.sort(p)
    line = np.arange(1, m + 1) * q / m
    # p(i) exactly on the line i·q/m is decided by rounding, differently by each formula
    assume(not np.isclose(order, line, rtol=1e-9, atol=0).any())
    passing = np.nonzero(order <= line)[0]
    cutoff = order[passing[-1]] if passing.size else -1.0
    assert np.array_equal(bh_reject(values, q), p <= cutoff)


def test_empty_and_invalid_inputs():
    assert bh_adjusted([]).size == 0
    with pytest.raises(ValueError):
        bh_adjusted([0.1, float("nan")])
    with pytest.raises(ValueError):
        bh_adjusted([1.5])
    with pytest.raises(ValueError):
        bh_reject([0.1], q=0.0)
