"""The tests run on a fresh machine: nothing may depend on the caller's environment.

A newcomer runs ``.venv/bin/python -m pytest`` without activating the venv, and CI
(``.ci/run``) runs the README's test command under ``env -i`` with Debian's default
PATH and a temporary HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_server_fixtures_find_their_programs_without_the_venv_on_path(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from servers import start_dovecot, start_pymap\n"
        "for start in (start_pymap, start_dovecot):\n"
        "    server = start()\n"
        "    with server.session() as c:\n"
        "        assert c.list_folders()\n"
        "    server.stop()\n"
        "print('both started')\n")
    env = {"PATH": DEBIAN_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "both started"


def test_ci_runs_the_readme_command_in_an_empty_environment(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "README.md").write_text(
        "# x\n\n<!-- test-command -->\n```sh\n"
        "pwd && env | sort && echo \"home: $HOME\" && test -d \"$HOME\" && "
        "test -z \"$(ls -A \"$HOME\")\"\n```\n")
    env = {**os.environ, "SECRET_OF_THE_CALLER": "1", "VIRTUAL_ENV": "/somewhere"}
    done = subprocess.run([str(repo / ".ci" / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert str(repo) in lines  # run from the repository root (pwd)
    names = {line.split("=", 1)[0] for line in lines if re.match(r"[A-Za-z_]\w*=", line)}
    assert names <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}, names
    assert f"PATH={DEBIAN_PATH}" in lines and "LANG=C.UTF-8" in lines
    home = next(line[len("home: "):] for line in lines if line.startswith("home: "))
    assert home != os.environ.get("HOME") and not Path(home).exists()  # fresh, then removed


def test_ci_fails_when_the_readme_command_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "README.md").write_text("<!-- test-command -->\n```sh\nexit 3\n```\n")
    assert subprocess.run([str(repo / ".ci" / "run")], capture_output=True,
                          timeout=60).returncode == 3
