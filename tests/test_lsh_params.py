"""The pure-Python LSH shape (transforms/lsh_params.py) chooses what datasketch's MinHashLSH would."""
from __future__ import annotations

import pytest
from datasketch.lsh import _optimal_param

from cmtp.transforms.lsh_params import FALSE_NEGATIVE_WEIGHT, FALSE_POSITIVE_WEIGHT, lsh_shape

THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]  # 0.5 .. 0.95


@pytest.mark.parametrize("num_perm", [16, 32, 64, 128, 256])
def test_lsh_shape_is_datasketchs_choice_over_the_grid(num_perm):
    for threshold in THRESHOLDS:
        expected = _optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)
        assert lsh_shape(threshold, num_perm) == expected, (threshold, num_perm)


def test_equal_weights_give_datasketchs_default_shape():
    assert lsh_shape(0.7, 128, 0.5, 0.5) == _optimal_param(0.7, 128, 0.5, 0.5) == (14, 9)
    assert lsh_shape(0.7, 128) == (20, 6)  # the weights the near dedup uses
