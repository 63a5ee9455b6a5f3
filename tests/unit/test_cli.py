"""The ``fed`` command line without Ray: arguments, errors, check, the party runner."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types

import psutil
import pytest

from fed._cli import commands as _cli
from fed._cli import launch
from fed._cli.check import CheckResult, print_table
from fed._cli.launch import LinePrefixer, PartyRunner, make_prefixers, overall_exit_code, party_env
from fed._cli.launch import free_local_ports as free_ports
from fed._config import load_job_config
from tests.support import REPO, write_config

COMMANDS = ("run", "demo", "check", "certs")


def run_main(capsys, *argv):
    """``fed ARGV`` in-process: (exit code, stdout, stderr)."""
    try:
        code = _cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# -- help and argument errors ---------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS])
def test_help_exits_0_and_describes_the_command(capsys, argv):
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: fed")
    if argv[0] != "--help":
        assert f"fed {argv[0]}" in out


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["run", "x.py"], "the following arguments are required: --config"),
    (["run", "--config", "c.yaml"], "the following arguments are required: SCRIPT"),
    (["run", "--config", "does-not-exist.yaml", "x.py"], "cannot read config file 'does-not-exist.yaml'"),
    (["demo", "--rounds", "0"], "'0' is not a positive integer"),
    (["run", "--config", "c.yaml", "--grace", "-1", "x.py"], "'-1' must be positive"),
    (["check", "--config", "c.yaml"], "no party given"),
    (["certs", "--config", "c.yaml"], "the following arguments are required: --out"),
])
def test_argument_errors_are_one_line_on_stderr_with_exit_2(capsys, monkeypatch, argv, message):
    monkeypatch.delenv("FED_PARTY", raising=False)
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("fed")
    assert "Traceback" not in err and out == ""


def test_run_rejects_a_missing_script_and_an_unknown_party(capsys, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", {"alice": 1, "bob": 2})
    code, _, err = run_main(capsys, "run", "--config", str(cfg), str(tmp_path / "nope.py"))
    assert code == 2 and "nope.py' not found" in err and err.count("\n") == 1
    script = tmp_path / "s.py"
    script.write_text("print('hi')\n")
    code, _, err = run_main(capsys, "run", "--config", str(cfg), "--party", "zed", str(script))
    assert code == 2 and "unknown party (--party) 'zed'" in err and "['alice', 'bob']" in err


def test_invalid_config_is_reported_on_one_line(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("parties:\n  alice: {address: 127.0.0.1:1, colour: red}\n")
    code, _, err = run_main(capsys, "run", "--config", str(cfg), "x.py")
    assert code == 2
    assert err.count("\n") == 1 and "unknown key 'parties.alice.colour'" in err


def test_python_dash_m_fed_gives_exit_2_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "fed", "run", "--config", "missing.yaml", "x.py"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fed run: error: cannot read config file") and "Traceback" not in proc.stderr


# -- FED_CONFIG fallback of fed.init ------------------------------------------------

def test_fed_init_config_falls_back_to_env(monkeypatch, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", {"alice": 11010, "bob": 11011})
    monkeypatch.setenv("FED_CONFIG", str(cfg))
    monkeypatch.setenv("FED_PARTY", "bob")
    job = load_job_config(party=None)
    assert job.party == "bob" and job.job_name == "clitest" and job.listen_address == "127.0.0.1:11011"
    # explicit arguments win over the environment
    assert load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "x": "127.0.0.1:2"}).job_name == "default"


def test_without_addresses_config_or_env_the_error_mentions_fed_config(monkeypatch):
    monkeypatch.delenv("FED_CONFIG", raising=False)
    with pytest.raises(_cli.ConfigError, match=r"\$FED_CONFIG"):
        load_job_config(party="alice")


# -- fed check -------------------------------------------------------------------

def test_check_reports_an_unreachable_peer_and_a_busy_port(capsys, tmp_path):
    alice, bob, carol = free_ports(3)
    cfg = write_config(tmp_path / "c.yaml", {"alice": alice, "bob": bob, "carol": carol})
    with socket.create_server(("127.0.0.1", carol)):  # carol "runs"; bob does not
        code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "alice", "--timeout", "1")
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert "OK" in rows["alice"] and "listen port free" in rows["alice"]
    assert f"127.0.0.1:{bob}" in rows["bob"] and "FAIL: cannot connect: Connection refused" in rows["bob"]
    assert "OK (TCP connect)" in rows["carol"]
    assert out.splitlines()[-1] == "2 of 3 checks passed"

    with socket.create_server(("127.0.0.1", alice)), socket.create_server(("127.0.0.1", bob)), \
            socket.create_server(("127.0.0.1", carol)):
        code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "alice")
    assert code == 1 and "cannot listen: port already in use" in out

    with socket.create_server(("127.0.0.1", bob)), socket.create_server(("127.0.0.1", carol)):
        code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "alice")
    assert code == 0 and out.splitlines()[-1] == "all 3 checks passed"


def test_check_of_an_invalid_config_or_party_fails_with_the_reason(capsys, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", {"alice": 1, "bob": 1})
    code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "alice")
    assert code == 1 and "invalid config" in out and "both use 127.0.0.1:1" in out
    cfg = write_config(tmp_path / "c.yaml", {"alice": 1, "bob": 2})
    code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "zed")
    assert code == 1 and "unknown party (fed.init) 'zed'" in out


def test_check_reports_missing_tls_files(capsys, tmp_path):
    alice, bob = free_ports(2)
    cfg = write_config(tmp_path / "c.yaml", {"alice": alice, "bob": bob},
                       f"tls: {{ca_cert: '{tmp_path}/ca.crt', cert: '{tmp_path}/{{party}}.crt', key: k.key}}\n")
    code, out, _ = run_main(capsys, "check", "--config", str(cfg), "--party", "alice")
    assert code == 1
    assert f"tls.ca_cert: file '{tmp_path}/ca.crt' does not exist" in out and "fed certs" in out


def test_table_columns_line_up():
    buf = io.StringIO()
    print_table([CheckResult("alice", "127.0.0.1:1", True, "OK"),
                 CheckResult("carolyn", "host:2", False, "cannot connect")], buf)
    lines = buf.getvalue().splitlines()
    assert [line.index(" 127") if "127" in line else None for line in lines][1] == len("carolyn") + 1
    assert lines[0].split() == ["PARTY", "ADDRESS", "STATUS"]
    assert lines[2].endswith("FAIL: cannot connect") and lines[1].endswith("OK")


# -- fed certs wiring ---------------------------------------------------------------

def test_certs_calls_write_party_certs_with_the_arguments(capsys, monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("fed._cli.certs")
    fake.write_party_certs = lambda config, out, force: calls.append((config, out, force))
    monkeypatch.setitem(sys.modules, "fed._cli.certs", fake)
    cfg = str(REPO / "configs" / "tls-3party.yaml")
    code, out, _ = run_main(capsys, "certs", "--config", cfg, "--out", str(tmp_path), "--force")
    assert code == 0 and calls == [(cfg, str(tmp_path), True)] and str(tmp_path) in out
    fake.write_party_certs = lambda config, out, force: (_ for _ in ()).throw(
        FileExistsError(17, "File exists", f"{out}/ca.crt"))
    code, _, err = run_main(capsys, "certs", "--config", cfg, "--out", str(tmp_path))
    assert code == 2 and err == f"fed certs: error: File exists ({tmp_path}/ca.crt)\n"


def test_certs_writes_files_for_the_tls_config(capsys, tmp_path):
    try:
        import fed._cli.certs  # noqa: F401
    except ImportError:
        pytest.skip("fed._cli.certs not merged yet")
    code, _, err = run_main(capsys, "certs", "--config", str(REPO / "configs" / "tls-3party.yaml"),
                            "--out", str(tmp_path))
    assert code == 0, err
    assert {"ca.crt", "alice.crt", "alice.key", "carol.key"} <= {p.name for p in tmp_path.iterdir()}


# -- output prefixing -------------------------------------------------------------------

def test_prefixer_labels_align_and_lines_end_once():
    pre = make_prefixers(["alice", "bob"], colour=False)
    assert pre["alice"].format(b"hello\n") == "[alice] hello\n"
    assert pre["bob"].format(b"hi\r\n") == "[bob]   hi\n"
    assert pre["bob"].format(b"no newline at eof") == "[bob]   no newline at eof\n"
    assert pre["bob"].format(b"bad \xff byte\n") == "[bob]   bad \ufffd byte\n"


def test_prefixer_colours_only_the_label():
    pre = make_prefixers(["alice", "bob"], colour=True)
    a, b = pre["alice"].format(b"x\n"), pre["bob"].format(b"x\n")
    assert a.startswith("\x1b[36m[alice]\x1b[0m ") and b.startswith("\x1b[33m[bob]\x1b[0m")
    assert LinePrefixer("p").format(b"x") == "[p] x\n"


def test_party_env_sets_party_config_and_unbuffered(tmp_path):
    env = party_env("bob", "c.yaml", {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "FED_PARTY": "bob", "FED_CONFIG": os.path.abspath("c.yaml"),
                   "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("codes, interrupted, expected", [
    ({"a": 0, "b": 0}, False, 0),
    ({"a": -15, "b": 3}, False, 3),
    ({"a": -9, "b": 0}, False, 137),
    ({"a": 0, "b": 0}, True, 130),
])
def test_overall_exit_code(codes, interrupted, expected):
    assert overall_exit_code(codes, interrupted) == expected


# -- the party runner with plain Python processes (no Ray) --------------------------------

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    party = os.environ["FED_PARTY"]
    print("party", party, "config", os.environ["FED_CONFIG"], "args", sys.argv[1:], flush=True)
    mode = sys.argv[1]
    if mode == "fail" and party == "bob":
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode in ("fail", "stubborn", "wait") and party != "bob":
        print("waiting", flush=True)
        time.sleep(120)
    if mode == "stubborn" and party == "bob":
        sys.exit(1)
""")


def _runner(tmp_path, mode, grace=10.0):
    cfg = write_config(tmp_path / "c.yaml", {"alice": 1, "bob": 2})
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    out = io.StringIO()
    runner = PartyRunner(["alice", "bob"], str(cfg), [sys.executable, str(script), mode], out=out, grace_s=grace)
    return runner, out, cfg


def test_runner_sets_env_prefixes_output_and_succeeds(tmp_path):
    runner, out, cfg = _runner(tmp_path, "ok")
    assert runner.run() == {"alice": 0, "bob": 0}
    lines = out.getvalue().splitlines()
    assert f"[alice] party alice config {cfg} args ['ok']" in lines
    assert f"[bob]   party bob config {cfg} args ['ok']" in lines


def test_a_failing_party_stops_the_others_with_sigterm(tmp_path):
    runner, out, _ = _runner(tmp_path, "fail")
    start = time.monotonic()
    codes = runner.run()
    assert codes == {"alice": -signal.SIGTERM, "bob": 3}, out.getvalue()
    assert overall_exit_code(codes) == 3
    assert "[fed] party bob exited with code 3: stopping the other parties" in out.getvalue()
    assert time.monotonic() - start < 30


def test_a_party_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    runner, out, _ = _runner(tmp_path, "stubborn", grace=0.5)
    codes = runner.run()
    assert codes == {"alice": -signal.SIGKILL, "bob": 1}, out.getvalue()
    assert "still running 0 s after SIGTERM: killing them" in out.getvalue() or \
        "still running 1 s after SIGTERM: killing them" in out.getvalue()


def test_ctrl_c_stops_every_party(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", {"alice": 1, "bob": 2})
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT.replace('party != "bob"', "True"))
    proc = subprocess.Popen([sys.executable, "-m", "fed", "run", "--config", str(cfg), str(script), "wait"],
                            stdout=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        lines = []
        while sum("waiting" in line for line in lines) < 2:
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            for c in psutil.Process(proc.pid).children(recursive=True):
                c.kill()
    assert proc.returncode == 130, rest
    assert "[fed] interrupted: stopping all parties" in rest
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_timeline_option_sets_the_directory_the_parties_write_to(monkeypatch, tmp_path, capsys):
    from fed._timeline import TIMELINE_DIR_ENV

    monkeypatch.setenv(TIMELINE_DIR_ENV, "")  # so that monkeypatch removes it again after the test
    monkeypatch.delenv(TIMELINE_DIR_ENV)
    parser = _cli.build_parser()
    assert parser.parse_args(["demo", "--timeline", "tl"]).timeline == "tl"
    assert parser.parse_args(["run", "--config", "c.yaml", "--timeline", "tl", "prog.py"]).timeline == "tl"
    assert parser.parse_args(["run", "--config", "c.yaml", "prog.py", "--timeline", "x"]).args == ["--timeline", "x"]
    _cli._export_timeline_dir(None)
    assert TIMELINE_DIR_ENV not in os.environ
    _cli._export_timeline_dir(str(tmp_path / "tl"))
    assert os.environ[TIMELINE_DIR_ENV] == str(tmp_path / "tl") and (tmp_path / "tl").is_dir()
    assert "writes its timeline" in capsys.readouterr().out


def test_free_ports_avoid_the_ranges_ray_and_the_kernel_hand_out():
    from fed._cli.launch import _RAY_WORKER_PORTS, _ephemeral_ports

    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        assert port not in _ephemeral_ports() and port not in _RAY_WORKER_PORTS
        with socket.create_server(("127.0.0.1", port)):  # still bindable
            pass


def test_free_ports_skip_a_port_in_use(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        monkeypatch.setattr("fed._cli.launch._quiet_port_range", lambda: range(taken, taken + 1))
        with pytest.raises(RuntimeError, match=f"no 1 free TCP ports on 127.0.0.1 in {taken}-{taken}"):
            free_ports(1)


# -- the supervisor as the party tests and the benchmarks use it ----------------------

TREE_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    # a grandchild in a session of its own (as a daemon would be): not in the party's group
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    with open(sys.argv[1] + "." + os.environ["FED_PARTY"], "w") as f:
        f.write(str(kid.pid))
    print("started", kid.pid, flush=True)
    time.sleep(120)
""")


def test_at_the_deadline_every_process_tree_is_killed_and_logs_are_kept(tmp_path):
    script = tmp_path / "tree.py"
    script.write_text(TREE_SCRIPT)
    pids = tmp_path / "pid"
    runner = PartyRunner(["alice", "bob"], None, [sys.executable, str(script), str(pids)], out=io.StringIO(),
                         log_dir=tmp_path / "logs", timeout=5.0)
    start = time.monotonic()
    codes = runner.run()
    assert time.monotonic() - start < 20
    assert runner.timed_out
    assert codes == {"alice": -signal.SIGKILL, "bob": -signal.SIGKILL}
    grandchildren = [int((tmp_path / f"pid.{p}").read_text()) for p in ("alice", "bob")]
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in grandchildren if psutil.pid_exists(pid)],
                                    timeout=5)
    assert not alive
    for party in ("alice", "bob"):
        assert runner.log_path(party).read_text().startswith("started ")
        assert 4.0 < runner.elapsed_s(party) < 15


def test_start_delay_and_a_stop_rule_that_expects_a_failure(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("import os, sys, time\n"
                      "time.sleep(0.5)\n"
                      "sys.exit(7 if os.environ['FED_PARTY'] == 'bob' else 0)\n")
    runner = PartyRunner(["alice", "bob"], None, [sys.executable, str(script)], out=io.StringIO(),
                         log_dir=tmp_path, timeout=60, start_delay={"alice": 1.5},
                         stop_rule=lambda party, code: code != {"bob": 7}.get(party, 0))
    codes = runner.run()
    assert codes == {"alice": 0, "bob": 7}  # bob's expected failure did not stop alice
    assert runner.started["alice"] - runner.started["bob"] >= 1.4
    assert not runner.timed_out


def test_a_party_that_was_not_started_yet_is_not_started_after_a_failure(tmp_path):
    out = io.StringIO()
    runner = PartyRunner(["alice", "bob"], None, {"alice": [sys.executable, "-c", "raise SystemExit(4)"],
                                                  "bob": [sys.executable, "-c", "pass"]},
                         out=out, log_dir=tmp_path, timeout=60, start_delay={"bob": 30})
    start = time.monotonic()
    assert runner.run() == {"alice": 4}
    assert time.monotonic() - start < 20
    assert "party alice exited with code 4: stopping the other parties" in out.getvalue()


def body_for_test(party, addresses, factor):
    """A module-level body for run_bodies: runs in each party process."""
    return {"party": party, "env": os.environ["FED_PARTY"], "n": len(addresses) * factor}


def test_run_bodies_returns_each_party_s_value(tmp_path):
    addresses = {"alice": "127.0.0.1:1", "bob": "127.0.0.1:2"}
    run = launch.run_bodies(body_for_test, ["alice", "bob"], addresses, workdir=tmp_path, args={"factor": 3},
                            root=REPO, timeout=60, out=io.StringIO())
    assert run.codes == {"alice": 0, "bob": 0} and not run.timed_out
    assert run.values == {p: {"party": p, "env": p, "n": 6} for p in ("alice", "bob")}
    assert all(run.elapsed_s[p] > 0 for p in ("alice", "bob"))
    assert "===== alice (exit 0) =====" in run.report()


def test_importable_name_of_a_script_run_directly(monkeypatch, tmp_path):
    script = tmp_path / "benchmarks" / "tools" / "probe.py"
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", main)

    def body():
        """A stand-in defined in a script."""
    body.__module__ = "__main__"
    assert launch.importable_name(body, tmp_path) == "benchmarks.tools.probe"
    assert launch.importable_name(body_for_test) == __name__
