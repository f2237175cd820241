import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# CI: derandomized (the same examples every run), bounded example counts.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
settings.register_profile("dev", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _isa_levels():
    try:
        from pyengine import _C
    except ImportError:
        return ["generic"]
    order = ["generic", "avx2", "avx512"]
    return order[: order.index(_C.isa_supported()) + 1]


@pytest.fixture(params=_isa_levels())
def isa(request):
    """Run a kernel test once per SIMD level this CPU supports (generic, avx2, avx512)."""
    from pyengine import _C
    before = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
