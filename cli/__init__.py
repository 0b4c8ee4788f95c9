"""The ``r1desk`` command line: the same engine calls the GUI makes, without a window.

Each area of the engine has its commands in a module here; errors the user can act on
become one line on stderr and a non-zero exit (``--debug`` shows the traceback).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from r1desk.engine.errors import R1deskError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except R1deskError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            hint = f" ({exc.hint})" if exc.hint else ""
            if getattr(exc, "downloaded", False):
                hint += " (r1desk downloaded it: delete it with 'r1desk models rm NAME --delete-files' and pull it again)"
            click.echo(f"Error: {exc}{hint}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def _self_test(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from r1desk.cli import selftest

        ctx.exit(selftest.run(click.echo))


@click.group(cls=_Group, invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.option("--self-test", is_flag=True, expose_value=False, is_eager=True, callback=_self_test,
              help="Check that r1desk works on this machine (llama.cpp, Qt, database, a small model) and exit.")
@click.version_option(package_name="r1desk")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """r1desk: run DeepSeek-R1 and other GGUF models on your own machine.

    Without a command, the desktop app starts.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand is None:
        launch: Callable[[], int] | None = ctx.obj.get("launch_gui")
        if launch is None:
            click.echo(ctx.get_help())
            return
        ctx.exit(launch())


def _register() -> None:
    # Each module adds its commands to ``cli`` when imported.
    from r1desk.cli import adapters, ask, chat, convert, docs, hardware, history, models, remote, serve  # noqa: F401


_register()


def main(argv: list[str] | None = None, *, launch_gui: Callable[[], int] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="r1desk", obj={"launch_gui": launch_gui}, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
