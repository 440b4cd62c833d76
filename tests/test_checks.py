import math

import pytest

from lrlab._checks import check_array, check_int, check_real


def test_check_real_names_argument_and_range():
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        check_real("gamma", 0.0, 0.0, 1.0, lo_open=True)
    with pytest.raises(ValueError, match="lr must be finite"):
        check_real("lr", math.nan, 0.0)
    assert check_real("x", 1, 0.0, 1.0) == 1.0


def test_check_int_and_array():
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, inf\)"):
        check_int("steps", 0, lo=1)
    assert check_int("steps", 3.0, lo=1) == 3
    with pytest.raises(ValueError, match="entry 1"):
        check_array("values", [1.0, float("nan")])
    with pytest.raises(ValueError, match=">= 0"):
        check_array("g", [1.0, -1.0], nonneg=True)
