"""The argen command: one Typer app, one small module per subcommand.

Nothing here imports torch: `argen --help` must stay instant. Commands import their pipeline
inside the function body.
"""

from __future__ import annotations

import sys

import typer

from argen import __version__
from argen.cli import info, models, run, weights_cmd
from argen.cli.errors import is_click, report
from argen.cli.spec_options import command_from_spec
from argen.modalities.registry import MODALITIES

app = typer.Typer(
    name="argen",
    help="Autoregressive and block-diffusion generation: one engine, one CLI, bundled models.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"argen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Print the version and exit.")) -> None:
    """argen: generate text and images (and, as they land, video, audio, meshes, crystals)."""


def _generation_command(modality: str):
    """`argen <modality>`: its options come from the modality's spec."""
    m = MODALITIES[modality]

    def run_it(**values):
        from argen.cli.generate import run_generation

        return run_generation(modality, values)

    return command_from_spec(m.spec_class(), run_it, m.help)


for _name, _m in MODALITIES.items():
    app.command(_name, help=_m.help)(_generation_command(_name))
app.command("run", help=run.__doc__)(run.run)
app.command("models", help=models.__doc__)(models.models)
app.command("info", help=info.__doc__)(info.info)
app.add_typer(weights_cmd.app, name="weights", help=weights_cmd.__doc__)


def _plugins() -> None:
    """Commands other packages add (the lab's train and eval): the ``argen.commands`` entry points."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="argen.commands"):
        ep.load()(app)


_plugins()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, map every failure to a one-line error and an exit code."""
    try:
        return _run(argv)
    except BrokenPipeError:  # `argen ... | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="argen", standalone_mode=False)
        if result == 130:  # Typer turns Ctrl-C into a bare exit code 130: say so in one line
            return report(KeyboardInterrupt())
        return result if isinstance(result, int) else 0
    except SystemExit as e:  # typer.Exit / --help
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure is reported in one line
        if is_click(e, "NoArgsIsHelpError"):  # bare `argen`: show the help
            print(e.ctx.get_help() if getattr(e, "ctx", None) else e.format_message())
            return 0
        if is_click(e, "Exit"):
            return e.exit_code
        if is_click(e, "Abort"):
            e = KeyboardInterrupt()
        return report(e)
