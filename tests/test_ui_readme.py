"""The README's commands for the desktop app work as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpdesk.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"`([^`\n]*main\.py[^`\n]*)`", text)
    found += [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)
              for line in block.splitlines() if "main.py" in line]
    return found


def test_the_second_agent_command_is_there_and_parses() -> None:
    commands = _commands()
    second = [c for c in commands if "--agent agent-b" in c]
    assert second, commands
    for command in second:
        words = shlex.split(command)
        # The project's own interpreter: a bare "python" is not the one with PySide6.
        assert words[0] == ".venv/bin/python", command
        args = build_parser().parse_args(words[2:])
        assert args.demo and args.agent == "agent-b"


def test_every_readme_command_for_the_app_uses_the_projects_python() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert ".venv" in setup  # the setup script makes the .venv the commands name
    for command in [c for c in _commands() if "--demo" in c and "COMMAND" not in c]:
        for part in command.split("&&"):
            words = shlex.split(part)
            if "main.py" in words:
                i = words.index("main.py")
                assert words[i - 1].endswith(".venv/bin/python"), command
