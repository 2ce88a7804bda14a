import uuid

import pytest

from tests.browser import browser_page  # noqa: F401 -- the fixture, for every test folder
from tests.stack import Stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed (to print the processes' logs).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def test_process_connections_close_after_each_request():
    """pytest-django's live server lives for the whole session and answers each request in a
    thread of this process; with persistent connections (CONN_MAX_AGE, the product's default) a
    thread kept alive by a keep-alive client holds its PostgreSQL session for the rest of the run,
    and every later test waiting for the database to be free (and its final drop) waits on it.
    The web and worker processes the tests start keep the product's setting."""
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_MAX_AGE"] = 0
    yield


@pytest.fixture(scope="session", autouse=True)
def own_cache_namespace():
    """Throttle counters live in the shared cache (Redis in CI), which outlives a test database:
    give each test session its own key prefix so a rerun never inherits another run's counts."""
    from django.conf import settings
    from django.test import override_settings

    caches = {name: {**config, "KEY_PREFIX": f"crmsync-test-{uuid.uuid4().hex[:8]}"}
              for name, config in settings.CACHES.items()}
    with override_settings(CACHES=caches):
        yield


@pytest.fixture
def stack(transactional_db, tmp_path):
    """Real processes over real HTTP: gunicorn and `manage.py worker` (qcluster) on the test
    database, with the sandbox CRM served by the same web server. Starts nothing by itself."""
    running = Stack(log_dir=tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def run_tasks_inline(monkeypatch):
    """django-q2's documented sync mode, for unit tests of code that enqueues tasks. Tests of
    the worker itself use the `stack` fixture instead."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def operator(client, django_user_model):
    """A logged-in superuser: the operator who sees everything in the admin."""
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-ops-123")
    client.force_login(user)
    return client
