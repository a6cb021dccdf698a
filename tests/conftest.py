"""Test configuration: hypothesis profiles and the opt-in slow marker.

Profiles (select with ``--hypothesis-profile=NAME`` or ``CERTKIT_HYPOTHESIS_PROFILE``):

* ``ci``       — ≥ 200 examples per property (default of ``make test``),
* ``thorough`` — ≥ 5000 examples per property (``make test-thorough``),
* ``dev``      — 50 examples, for quick local iteration.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=200, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=5000, **_common)
settings.register_profile("dev", max_examples=50, **_common)
settings.load_profile(os.environ.get("CERTKIT_HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# pytest-xdist runs one worker per core (`-n 2`): one torch thread each avoids oversubscription.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CERTKIT_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set CERTKIT_SLOW=1 or run `make test-slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
