"""The ``fed`` command line: ``run``, ``demo``, ``check``, ``certs``.

Every error is one line on stderr and exit code 2 (never a traceback);
``fed check`` exits 1 when a check fails; ``fed run`` exits non-zero when any
party fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, Optional, Sequence

from fed._config import load_file_config, load_job_config
from fed._errors import ConfigError, FedError, UnknownPartyError, UsageError

EXIT_ERROR = 2
EXIT_CHECK_FAILED = 1
DEMO_MODULE = "fed._cli.demo"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fed run: error: ... (see 'fed run --help')``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _one_line(text: object) -> str:
    """``str(text)`` on one line: its non-blank lines joined with '; '."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


# -- fed run -----------------------------------------------------------------

def _cmd_run(args: argparse.Namespace) -> int:
    from fed._cli.launch import PartyRunner, exec_party, overall_exit_code

    config = load_file_config(args.config)
    script = Path(args.script)
    if not script.is_file():
        raise UsageError(f"script {args.script!r} not found", "give the path of a Python file")
    command = [sys.executable, str(script), *args.args]
    _export_timeline_dir(args.timeline)
    if args.party is not None:
        if args.party not in config.parties:
            raise UnknownPartyError(args.party, config.parties, what="party (--party)")
        exec_party(args.party, args.config, command)
    runner = PartyRunner(list(config.parties), args.config, command, grace_s=args.grace)
    codes = runner.run()
    return overall_exit_code(codes, runner.interrupted)


# -- fed demo ----------------------------------------------------------------

def _export_timeline_dir(directory: Optional[str]) -> None:
    """With ``--timeline DIR``, have every party write its Chrome trace to DIR at fed.shutdown."""
    if directory:
        from fed._timeline import TIMELINE_DIR_ENV

        os.makedirs(directory, exist_ok=True)
        os.environ[TIMELINE_DIR_ENV] = os.path.abspath(directory)
        print(f"[fed] each party writes its timeline (Chrome trace) to {os.path.abspath(directory)}", flush=True)


def write_local_config(path: Path, parties: Sequence[str], job_name: str) -> None:
    """Write a YAML config with ``parties`` on free loopback ports."""
    from fed._cli.launch import free_local_ports

    ports = free_local_ports(len(parties))
    lines = [f"job_name: {job_name}", "parties:"]
    lines += [f"  {p}: {{address: 127.0.0.1:{port}}}" for p, port in zip(parties, ports, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    from fed._cli.launch import PartyRunner, overall_exit_code

    with tempfile.TemporaryDirectory(prefix="silofed-demo-") as tmp:
        config = Path(tmp) / "demo.yaml"
        write_local_config(config, ("alice", "bob", "carol"), "demo")
        print(f"[fed] running the federated logistic regression demo as alice, bob and carol "
              f"(config {config})", flush=True)
        command = [sys.executable, "-m", DEMO_MODULE, "--rounds", str(args.rounds)]
        _export_timeline_dir(args.timeline)
        runner = PartyRunner(["alice", "bob", "carol"], str(config), command, grace_s=args.grace)
        codes = runner.run()
    code = overall_exit_code(codes, runner.interrupted)
    print("[fed] demo finished" if code == 0 else f"[fed] demo failed (exit codes {codes})", flush=True)
    return code


# -- fed check ---------------------------------------------------------------

def _cmd_check(args: argparse.Namespace) -> int:
    from fed._cli import check as _check

    try:
        cfg = load_job_config(party=args.party, config=args.config)
    except ConfigError as exc:
        results = [_check.config_failure(args.config, exc)]
    else:
        results = _check.run_checks(cfg, timeout_s=args.timeout)
    _check.print_table(results, sys.stdout)
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed" if failed else
          f"all {len(results)} checks passed")
    return EXIT_CHECK_FAILED if failed else 0


# -- fed certs ---------------------------------------------------------------

def _cmd_certs(args: argparse.Namespace) -> int:
    try:
        from fed._cli.certs import write_party_certs
    except ImportError as exc:
        raise FedError(f"`fed certs` is not available in this installation ({exc})") from None
    load_file_config(args.config)
    write_party_certs(args.config, args.out, args.force)
    print(f"wrote a CA and a certificate and key per party to {args.out}")
    return 0


# -- parser ------------------------------------------------------------------

def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``fed`` argument parser with its subcommands."""
    parser = _Parser(prog="fed", description="silofed: run federated jobs across parties.")
    from fed import __version__

    parser.add_argument("--version", action="version", version=f"silofed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", help="run a program as every party of a config (or as one --party)",
        description="Run SCRIPT once per party of CONFIG as local processes, with FED_PARTY and FED_CONFIG "
                    "set so that fed.init() needs no arguments. Output lines are prefixed with the party. "
                    "If a party fails, the others are stopped (SIGTERM, then SIGKILL after --grace s) and "
                    "the exit code is non-zero. With --party, run only that party, in the foreground.")
    run.add_argument("--config", required=True, metavar="CONFIG", help="YAML party config (see configs/)")
    run.add_argument("--party", metavar="NAME", help="run only this party, in the foreground (production)")
    run.add_argument("--grace", type=_positive, default=10.0, metavar="SECONDS",
                     help="seconds between SIGTERM and SIGKILL when stopping parties (default 10)")
    run.add_argument("--timeline", metavar="DIR",
                     help="have each party write its timeline (Chrome trace JSON) to DIR at fed.shutdown")
    run.add_argument("script", metavar="SCRIPT", help="the Python program every party runs")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments for SCRIPT")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo", help="federated logistic regression as alice, bob and carol on this machine",
        description="Run the federated logistic regression example (examples/logistic_regression.py) as "
                    "three local parties on free loopback ports, each with its own small Ray.")
    demo.add_argument("--rounds", type=_positive_int, default=8, help="training rounds (default 8)")
    demo.add_argument("--grace", type=_positive, default=10.0, metavar="SECONDS",
                      help="seconds between SIGTERM and SIGKILL when stopping parties (default 10)")
    demo.add_argument("--timeline", metavar="DIR",
                      help="write each party's timeline (Chrome trace JSON, <job>-<party>.json) to DIR; "
                           "open it in chrome://tracing or ui.perfetto.dev")
    demo.set_defaults(func=_cmd_demo)

    check = sub.add_parser(
        "check", help="check that a party can join: config, listen port, peers, TLS",
        description="Validate CONFIG, check that PARTY's listen port is free and that every peer answers "
                    "(TCP connect; a mutual-TLS handshake with the configured files if tls is set). "
                    "Prints one line per check; exit code 1 if any fails.")
    check.add_argument("--config", required=True, metavar="CONFIG", help="YAML party config")
    check.add_argument("--party", default=os.environ.get("FED_PARTY"), metavar="NAME",
                       help="the party to check from (default $FED_PARTY)")
    check.add_argument("--timeout", type=_positive, default=3.0, metavar="SECONDS",
                       help="connect/handshake timeout per peer (default 3)")
    check.set_defaults(func=_cmd_check)

    certs = sub.add_parser(
        "certs", help="create a CA and a certificate per party for mutual TLS",
        description="Create a CA and one certificate and key per party of CONFIG in DIR, for the config's "
                    "tls section.")
    certs.add_argument("--config", required=True, metavar="CONFIG", help="YAML party config")
    certs.add_argument("--out", required=True, metavar="DIR", help="directory to write the files to")
    certs.add_argument("--force", action="store_true", help="overwrite existing files")
    certs.set_defaults(func=_cmd_certs)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``fed`` command; returns the exit code.

    Args:
        argv: the arguments after ``fed`` (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check" and not args.party:
        parser.exit(EXIT_ERROR, "fed check: error: no party given: pass --party NAME or set $FED_PARTY\n")
    try:
        return args.func(args)
    except FedError as exc:
        print(f"fed {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"fed {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"fed {args.command}: interrupted", file=sys.stderr)
        return 130
