"""Configuration a newcomer and an operator rely on."""

from pathlib import Path
import re

from django.conf import settings
from django.db import connection
import pytest
import yaml

ROOT = Path(settings.BASE_DIR)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite durability settings")
def test_sqlite_runs_in_wal_mode_with_full_sync():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    assert (journal, synchronous) == ("wal", 2)  # 2 is FULL


def env_names_read_by_settings() -> set[str]:
    source = (ROOT / "crmsync" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', source))


def test_env_example_names_only_settings_the_project_reads():
    names = set(re.findall(r"^#?\s*([A-Z][A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names and names <= env_names_read_by_settings()


def test_docker_compose_describes_the_production_deployment():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert set(services) >= {"postgres", "redis", "web", "worker"}
    web, worker = services["web"], services["worker"]
    web_cmd = " ".join(web["command"]) if isinstance(web["command"], list) else web["command"]
    worker_cmd = " ".join(worker["command"]) if isinstance(worker["command"], list) else worker["command"]
    assert "manage.py migrate" in web_cmd and "gunicorn crmsync.wsgi" in web_cmd
    assert "manage.py worker" in worker_cmd  # runs qcluster after syncing schedules
    for service in (web, worker):
        env = service["environment"]
        assert set(env) <= env_names_read_by_settings(), set(env) - env_names_read_by_settings()
        assert env["DEBUG"] in ("false", False)
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert {"SECRET_KEY", "CRMSYNC_ENCRYPTION_KEYS"} <= set(env)
        assert set(service["depends_on"]) >= {"postgres", "redis"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
