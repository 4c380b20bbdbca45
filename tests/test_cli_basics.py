from click.testing import CliRunner

from netbind.cli import cli


def test_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "KubeVirt network binding plugins" in result.output
