"""`geovision --help` and every command's `--help` explain each option and its default."""

import click
import pytest

from geovision.cli.main import cli, main


def test_group_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in cli.commands:
        assert f"geovision {name}" in text, name


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_has_help_and_its_default(name, capsys):
    command = cli.commands[name]
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help, f"{name} {param.opts}: no help"
        if param.is_flag or param.count or param.multiple or param.required:
            continue
        shown = param.show_default or "default" in param.help
        assert shown, f"{name} {param.opts}: default not shown"
    assert main([name, "--help"]) == 0
    assert "Usage: geovision" in capsys.readouterr().out
