"""``lrbench docs-cli``: docs/CLI.md, every command and option, generated from the click commands."""
from __future__ import annotations

import click

from .errors import EXIT_IO, EXIT_LOCKED
from .group import main


# ------------------------------------------------------------------------------------- the CLI reference

CLI_REFERENCE = "docs/CLI.md"
REGENERATE = f"python -m bench.cli docs-cli -o {CLI_REFERENCE}"
EXIT_CODES = [(0, "success"), (1, "an error, said in one line (a failed chunk, a bad matrix, ...)"),
              (2, "a bad argument or option (click's usage error)"),
              (EXIT_IO, "results could not be written (a full disk, a file-size limit, no permission, a read-only "
                        "file system): the line names the file, the error, what is saved and the command that "
                        "continues (`lrbench run --resume ID`, `lrbench report ID`)"),
              (EXIT_LOCKED, "another process is writing the run folder: the line names its pid, host, command "
                            "and start; nothing was changed"),
              (130, "interrupted (Ctrl-C, SIGTERM): finished chunks are saved, `lrbench run --resume ID` continues")]


def _type_text(p: click.Parameter) -> str:
    """How an option's values read in the reference (the same under every click version)."""
    if getattr(p, "is_flag", False):
        return "flag"
    t, info = p.type, p.type.to_info_dict()
    if isinstance(t, click.Choice):
        return "|".join(map(str, t.choices))
    if isinstance(t, (click.IntRange, click.FloatRange)):
        kind = "INTEGER" if isinstance(t, click.IntRange) else "FLOAT"
        lo = "" if info["min"] is None else f"{info['min']} {'<' if info['min_open'] else '<='} "
        hi = "" if info["max"] is None else f" {'<' if info['max_open'] else '<='} {info['max']}"
        return f"{lo}{kind}{hi}"
    if isinstance(t, click.Path):
        return "FOLDER" if not info["file_okay"] else "FILE" if not info["dir_okay"] else "PATH"
    return {"integer": "INTEGER", "float": "FLOAT", "text": "TEXT", "boolean": "BOOLEAN"}.get(info["name"],
                                                                                             info["name"].upper())


def _default_text(p: click.Parameter) -> str:
    d = p.default
    if getattr(p, "is_flag", False):
        return "on" if d is True else "off"
    if isinstance(d, (tuple, list)):
        return ", ".join(map(str, d))
    return str(d) if isinstance(d, (str, int, float)) and not isinstance(d, bool) else ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_reference() -> str:
    """docs/CLI.md: every command with its help, arguments, options, their values and defaults, from the click
    commands themselves (``lrbench docs-cli``; tests/test_docs.py keeps the file equal to this)."""
    import inspect
    out = ["# lrbench command reference", "",
           f"Generated from the click commands by `{REGENERATE}`; do not edit by hand (tests/test_docs.py fails "
           "when it is stale). Every command takes `-h` / `--help`.", "",
           "Exit status of every command:", ""]
    out += [f"- `{code}`: {what}" for code, what in EXIT_CODES]
    ctx = click.Context(main, info_name="lrbench")
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        usage = " ".join(["lrbench", name, "[OPTIONS]" if any(isinstance(p, click.Option) for p in cmd.params)
                          else "", *(p.human_readable_name + ("..." if p.nargs == -1 else "") for p in args)])
        out += ["", f"## lrbench {name}", "", inspect.cleandoc(cmd.help or "").replace("\b\n", ""), "",
                f"Usage: `{' '.join(usage.split())}`", "", "| option | values | default | what |", "|---|---|---|---|"]
        for p in cmd.params:
            if isinstance(p, click.Argument):
                out.append(f"| `{p.human_readable_name}` | {_cell(_type_text(p))} | | "
                           f"{'required' if p.required else 'optional'}{', repeatable' if p.nargs == -1 else ''} |")
            elif not p.hidden:
                opts = " / ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
                help_ = p.help or ""
                help_ += " (repeatable)" if p.multiple and "repeatable" not in help_ else ""
                help_ += " (required)" if p.required else ""
                out.append(f"| {opts} | {_cell(_type_text(p))} | {_cell(_default_text(p))} | {_cell(help_)} |")
    return "\n".join(out) + "\n"


@main.command("docs-cli", hidden=True)
@click.option("-o", "--out", "out", default=None, type=click.Path(dir_okay=False),
              help=f"Write the reference here (e.g. {CLI_REFERENCE}) instead of printing it.")
def docs_cli(out):
    """Print (or write) the Markdown reference of every command: docs/CLI.md."""
    text = cli_reference()
    if out is None:
        click.echo(text, nl=False)
    else:
        from ..results import write_text
        write_text(out, text)
        click.echo(f"written: {out}")


