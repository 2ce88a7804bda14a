"""plotly.js for the dashboard, served from the installed `plotly` package as the static file
monitoring/vendor/plotly.min.js: no CDN, nothing to download at build time, and collectstatic
and whitenoise treat it like any other static file. Only that one file is exposed."""

from importlib.util import find_spec
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PREFIX = "monitoring/vendor"
NAME = "plotly.min.js"
STATIC_PATH = f"{PREFIX}/{NAME}"


def _package_data() -> Path | None:
    spec = find_spec("plotly")  # located, not imported: the Python side of plotly is not used
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "package_data"
    return folder if (folder / NAME).is_file() else None


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.folder = _package_data()

    def check(self, **kwargs):
        if self.folder is None:
            return [Error("The plotly package (the dashboard's charts) is not installed.", id="monitoring.E001",
                          hint="pip install -e . installs it.")]
        return []

    def find(self, path, find_all=False, **kwargs):
        found = str(self.folder / NAME) if self.folder is not None and path == STATIC_PATH else None
        if find_all or kwargs.get("all"):
            return [found] if found else []
        return found

    def list(self, ignore_patterns):
        if self.folder is not None:
            storage = FileSystemStorage(location=self.folder)
            storage.prefix = PREFIX
            yield NAME, storage
