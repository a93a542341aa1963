"""The wheel ships personas/, tasks/ and knowledge/, and an installed copy finds them."""

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No module named build" in proc.stderr:
        pytest.skip("the `build` package is not installed (pip install build)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(out.glob("*.whl"))


def test_wheel_contains_the_catalog(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "sage_agent/_catalog/personas/db-sage.md" in names
    assert "sage_agent/_catalog/tasks/db-env-check.md" in names
    assert "sage_agent/db/baseline.sql" in names
    assert any(n.startswith("sage_agent/_catalog/knowledge/") for n in names)


def test_installed_copy_validates_outside_the_repo(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import sage_agent, sage_agent.catalog.paths as p; "
                            "print(sage_agent.__file__); print(p.catalog_root())"],
                           capture_output=True, text=True, cwd=elsewhere)
    module_file, root = where.stdout.split()
    assert module_file.startswith(str(env_dir)) and root.endswith("_catalog"), where.stdout
    proc = subprocess.run([str(env_dir / "bin" / "sage"), "validate"], capture_output=True, text=True,
                          cwd=elsewhere, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "catalog OK" in proc.stdout
    proc = subprocess.run([str(env_dir / "bin" / "sage"), "run", "*help", "--json"], capture_output=True,
                          text=True, cwd=elsewhere, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["operation"] == "help"
