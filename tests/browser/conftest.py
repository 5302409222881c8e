"""Browser tests are opt-in: they run only when selected with ``-m browser`` (``make check-widget``)."""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium + JupyterLab (opt-in: -m browser)")


def pytest_collection_modifyitems(config, items):
    if "browser" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="browser test: run with `pytest -m browser tests/browser` (make check-widget)")
    for item in items:
        if item.get_closest_marker("browser") is not None:  # the marker, not the folder's name
            item.add_marker(skip)
