"""The docs against the real command line: every ``lrbench ...`` line of README.md and docs/ parses against
the click commands (an unknown command, option or choice fails), every option of ``lrbench run`` is in the
README (a dropped section takes its options with it), and docs/CLI.md is what ``lrbench docs-cli`` makes."""
import re
import shlex
from pathlib import Path

import click
import pytest

from bench.cli import CLI_REFERENCE, REGENERATE, cli_reference, main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted(ROOT.glob("docs/*.md")), *sorted(ROOT.glob("reference/*.md")),
        *sorted(ROOT.glob("results/*/README.md"))]
DOCS = [d for d in DOCS if d != ROOT / CLI_REFERENCE]  # generated from the commands themselves
PLACEHOLDER = "PLACEHOLDER"


def commands_in(text: str):
    """(line number, the text after ``lrbench``) of every command in fenced code blocks and inline code spans
    (a span may run over a line break)."""
    found, fenced, inline = [], False, []
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            found += [(n, c) for c in _shell_commands(line)]
        else:
            inline.append((n, line))
    prose = "\n".join(line for _, line in inline)
    starts = [n for n, _ in inline]
    for m in re.finditer(r"(`+)(.+?)\1", prose, flags=re.S):
        span = " ".join(m.group(2).split())
        if re.match(r"(\S*/)?lrbench\s", span):
            found += [(starts[prose.count("\n", 0, m.start())], c) for c in _shell_commands(span)]
    return found


def _shell_commands(line: str):
    """The lrbench commands of a shell line: words after a word ending in ``lrbench``, up to a pipe, ``&&``,
    ``;`` or a comment. Doc notation: ``<id>`` and ``...`` are placeholders, ``[...]`` an optional part."""
    line = re.sub(r"<[^<>\s]+>", PLACEHOLDER, line)
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    out, cmd = [], None
    for w in words + ["|"]:
        if w in ("|", "||", "&&", ";", ">", ">>", "2>&1"):
            if cmd is not None:
                out.append(cmd)
            cmd = None
        elif cmd is not None:
            w = w.removeprefix("[").removesuffix("]")
            if w:
                cmd.append(PLACEHOLDER if w in ("...", "…") else w)
        elif w == "lrbench" or w.endswith("/lrbench"):
            cmd = []
    return out


def check(args: list[str]) -> str | None:
    """None when ``lrbench ARGS`` parses against the real commands (click's own parser: options and their
    arity, arguments), else why not. Values are not converted (docs write ``N``) and no callback runs, but a
    choice's value (each of ``a|b``) must be one of its choices."""
    if not args:
        return "no command"
    group = click.Context(main, info_name="lrbench", **main.context_settings)
    if args[0].startswith("-"):
        return None if args[0] in ("-h", "--help") else f"unknown option {args[0]} of lrbench"
    cmd = main.get_command(group, args[0])
    if cmd is None:
        return f"no command {args[0]!r} (commands: {', '.join(main.list_commands(group))})"
    ctx = click.Context(cmd, info_name=args[0], parent=group)
    try:
        opts, rest, _ = cmd.make_parser(ctx).parse_args(args=list(args[1:]))
    except click.UsageError as e:
        return e.format_message()
    if rest and not ctx.allow_extra_args:
        return f"unexpected argument(s) {rest}"
    for p in cmd.params:
        if isinstance(p, click.Option) and isinstance(p.type, click.Choice) and p.name in opts:
            given = opts[p.name] if isinstance(opts[p.name], (list, tuple)) else [opts[p.name]]
            for value in given:
                bad = [v for v in str(value).split("|") if v != PLACEHOLDER and v not in p.type.choices]
                if bad:
                    return f"{p.opts[0]} {value}: not one of {'|'.join(p.type.choices)}"
    return None


def doc_commands():
    return [(f"{d.relative_to(ROOT)}:{n}", args) for d in DOCS for n, args in commands_in(d.read_text())]


def test_every_lrbench_line_in_the_docs_parses():
    found = doc_commands()
    assert len(found) > 30 and {a[0] for _, a in found} >= {"run", "report", "speed", "train-speed"}
    bad = [f"{where}: lrbench {shlex.join(args)}: {why}" for where, args in found if (why := check(args))]
    assert not bad, "docs name what the CLI does not take (fix the doc or the command):\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("line, why", [
    ("lrbench frobnicate --epochs 3", "no command 'frobnicate'"),
    ("lrbench run --matrix quick --no-such-flag", "such option"),
    ("lrbench run --executor rayy", "--executor rayy: not one of local|ray"),
    ("lrbench run --optim-impl auto|numba|jax", "--optim-impl auto|numba|jax: not one of"),
    ("lrbench report <run-id> --epochs 3", "such option"),
    ("lrbench report a b", "unexpected argument"),
    ("lrbench run --epochs", "requires an argument"),
    ("lrbench --verbose run", "unknown option --verbose"),
])
def test_the_check_rejects_what_the_cli_rejects(line, why):
    (args,) = _shell_commands(line)
    assert why in (check(args) or "passed")
    if why == "such option":  # click's own words (they vary by version) and the option named
        assert args[-2] in check(args) or args[-1] in check(args)


@pytest.mark.parametrize("line", [
    "lrbench run --matrix quick|default|full|keras-classic|my.toml [--device auto|cpu|cuda] [--epochs N]",
    "lrbench run --resume <run-id> --executor ray   # a comment --no-such-flag",
    "lrbench plot \"WSD(lr=0.1, total_steps=1000)\" [...] --steps N -o s.png | tee log",
    ".venv/bin/lrbench report x --results r && lrbench cross-check a b --out c.csv",
    "lrbench run -h",
])
def test_the_check_takes_doc_notation(line):
    for args in _shell_commands(line):
        assert check(args) is None, (args, check(args))


def test_commands_are_found_in_code_blocks_and_spans():
    text = ("x `lrbench report\nr1` y\n```bash\n$ lrbench run --resume <id>   # go\n"
            "echo 1 && lrbench speed | tee l\n```\n`lrbench` alone, `pip install lrbench`")
    assert commands_in(text) == [(4, ["run", "--resume", PLACEHOLDER]), (5, ["speed"]), (1, ["report", "r1"])]


def test_every_command_is_shown_and_every_run_option_is_in_the_readme():
    """A section dropped in a merge (as the Ray section once was) takes its commands and options with it.
    ``lrbench run`` is the README's command: its options are all there. A new option: say it in README.md."""
    group = main.make_context("lrbench", [], resilient_parsing=True)
    shown = {args[0] for _, args in doc_commands()}
    commands = [c for c in main.list_commands(group) if not main.get_command(group, c).hidden]
    assert not set(commands) - shown, f"commands never shown as a command line in the docs: {set(commands) - shown}"
    readme = README.read_text()
    run = main.get_command(group, "run")
    missing = [o for p in run.params if isinstance(p, click.Option) for o in p.opts
               if o.startswith("--") and not re.search(re.escape(o) + r"(?![\w-])", readme)]
    assert not missing, f"options of lrbench run that README.md never mentions: {missing}"


def test_cli_reference_is_fresh():
    assert (ROOT / CLI_REFERENCE).read_text() == cli_reference(), (
        f"{CLI_REFERENCE} is stale (a command or option changed): regenerate it with `{REGENERATE}` "
        f"from the repository root (or `make docs`) and commit it")


def test_cli_reference_names_every_option_and_default():
    text = (ROOT / CLI_REFERENCE).read_text()
    group = main.make_context("lrbench", [], resilient_parsing=True)
    for name in main.list_commands(group):
        cmd = main.get_command(group, name)
        if cmd.hidden:
            assert f"lrbench {name}" not in text
            continue
        assert f"## lrbench {name}\n" in text, f"{CLI_REFERENCE} lacks lrbench {name}: {REGENERATE}"
        section = text.split(f"## lrbench {name}\n", 1)[1].split("\n## ", 1)[0]
        for p in cmd.params:
            if isinstance(p, click.Option):
                row = next((r for r in section.splitlines() if r.startswith(f"| `{p.opts[0]}`")), None)
                assert row, f"{CLI_REFERENCE} lacks {name} {p.opts[0]}: {REGENERATE}"
                if isinstance(p.default, (int, float, str)) and not isinstance(p.default, bool):
                    assert f"| {p.default} |" in row, row
    assert "| `--matrix` | TEXT | quick |" in text and "`74`" in text and "`75`" in text
