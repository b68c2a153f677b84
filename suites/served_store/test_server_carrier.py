"""What the store carrier puts on a host, checked offline: the program files it copies run as
the store on their own (the copied model, not this checkout's), and its log reading."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_server_support import catalog_snap, install_action, release_all, running_server

from snapconform.harness.store_carrier import program_files, store_port
from snapconform.model.store import Store
from snapconform.served_store.catalog import CatalogWriter


def unpack_program(directory: Path) -> Path:
    for name, data in program_files().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory / "server_program.py"


def test_program_files_are_the_server_and_the_whole_model(tmp_path):
    files = program_files()
    model = Path(__import__("snapconform.model").model.__file__).parent
    assert set(files) == {
        "server_program.py",
        "snapconform/__init__.py",
        *(f"snapconform/model/{path.name}" for path in model.glob("*.py")),
    }


def test_the_copied_program_imports_only_its_copy(tmp_path):
    program = unpack_program(tmp_path / "program")
    probe = (
        f"import sys; sys.path.insert(0, {str(program.parent)!r}); import json, server_program; "
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
        " if n.startswith('snapconform'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    loaded = json.loads(done.stdout)
    assert any(path.endswith("model/store.py") for path in loaded)
    assert all(path.startswith(str(program.parent)) for path in loaded), loaded


def test_the_copied_program_serves(tmp_path, monkeypatch):
    program = unpack_program(tmp_path / "program")
    monkeypatch.setattr("test_server_support.SERVER", program)
    store = release_all(Store(), [("stable", 1, "0")])
    catalog = CatalogWriter().write(
        tmp_path / "catalog", [catalog_snap(tmp_path / "b", "sc-copied", store)]
    )
    with running_server(catalog, tmp_path) as server:
        response = server.actions([install_action("sc-copied", "stable")])
    assert response.json()["results"][0]["snap"]["revision"] == 1


def test_store_port():
    assert store_port("http://127.0.0.1:8190") == 8190
    with pytest.raises(ValueError, match=re.escape("expected http://127.0.0.1:PORT")):
        store_port("http://store.example:8190")


def test_the_harness_room_does_not_import_the_model():
    probe = (
        "import sys, snapconform.harness.store_carrier; "
        "print(sorted(n for n in sys.modules"
        " if n.startswith(('snapconform.model', 'snapconform.served_store'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
