import random

import numpy as np
import pytest
import torch

from actionbook.seed import rng_state, seed_everything, set_rng_state


def _draw():
    return random.random(), float(np.random.rand()), torch.randn(5)


def test_same_seed_same_numbers():
    seed_everything(11)
    a = _draw()
    seed_everything(11)
    b = _draw()
    seed_everything(12)
    c = _draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert not torch.equal(a[2], c[2])


def test_rng_state_round_trip():
    seed_everything(3)
    state = rng_state()
    first = _draw()
    set_rng_state(state)
    again = _draw()
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)
