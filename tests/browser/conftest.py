"""Browser tests are opt-in: they run only when selected with ``-m browser`` (``make check-widget``)."""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium + JupyterLab (opt-in: -m browser)")


def pytest_collection_modifyitems(config, items):
    if "browser" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run with `pytest -m browser tests/browser` (make check-widget)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
