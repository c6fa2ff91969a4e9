"""What a non-editable install ships, and where the integrations look for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import scorer.integrations as integrations
from scorer.integrations import rspamd, spamassassin

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {
    "lua": ["rdns_scorer.lua", "rdns_scorer.conf"],
    "spamassassin": ["RdnsScorer.pm", "rdns_scorer.cf", "rdns_scorer_overlap.cf"],
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From a copy of what the build reads: pip builds in the source tree (build/, egg-info).
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "scorer", "lua", "spamassassin"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    # Offline whatever the environment says: no index, no version check, no user config
    # (pip's self-check reached PyPI where PIP_DISABLE_PIP_VERSION_CHECK was not set).
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
        env=offline,
    )  # fmt: skip
    [built] = out.glob("rdns_scorer-*.whl")
    return built


def test_wheel_ships_both_plugins_as_data_files(wheel: Path) -> None:
    # Regression: spamassassin/ was not in the wheel, so `spamassassin install` failed
    # for every pip, pipx or Docker install.
    names = zipfile.ZipFile(wheel).namelist()
    for subdir, files in SHIPPED.items():
        for name in files:
            assert any(n.endswith(f".data/data/share/rdns-scorer/{subdir}/{name}") for n in names)


def test_integrations_find_an_installed_copy(
    wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Laid out as pip installs the wheel's data (<scheme data>/share/rdns-scorer/...),
    # and no checkout to fall back on.
    data = tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if ".data/data/" in member:
                target = data / member.split(".data/data/", 1)[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    monkeypatch.setattr(integrations, "CHECKOUT", tmp_path / "no-checkout")
    monkeypatch.setattr(integrations, "install_roots", lambda: [data / "share" / "rdns-scorer"])
    assert rspamd.plugin_dir() == data / "share" / "rdns-scorer" / "lua"
    assert spamassassin.source_dir() == data / "share" / "rdns-scorer" / "spamassassin"


def test_install_roots_cover_debian_system_and_user_installs() -> None:
    # Regression: only sys.prefix was searched; Debian's system pip installs data
    # under /usr/local (the scheme's data path) and `pip --user` under the user base.
    roots = integrations.install_roots()
    assert Path(sysconfig.get_path("data")) / "share" / "rdns-scorer" in roots
    assert Path(sys.prefix) / "share" / "rdns-scorer" in roots


def test_install_roots_cover_the_user_base_once_and_only_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrations.site, "USER_BASE", str(tmp_path / "user"))
    roots = integrations.install_roots()
    assert roots[-1] == tmp_path / "user" / "share" / "rdns-scorer"
    assert len(roots) == len(set(roots))
    # pip --user's base is the prefix (a user's own Python): searched once.
    monkeypatch.setattr(integrations.site, "USER_BASE", sys.prefix)
    roots = integrations.install_roots()
    assert roots.count(Path(sys.prefix) / "share" / "rdns-scorer") == 1
    # No user base (python -s, some embedded builds): nothing relative to the cwd.
    monkeypatch.setattr(integrations.site, "USER_BASE", None)
    assert all(root.is_absolute() for root in integrations.install_roots())


def test_the_checkout_comes_first_then_the_roots_holding_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout, empty, partial, full = (tmp_path / n for n in ("co", "empty", "partial", "full"))
    (partial / "lua").mkdir(parents=True)  # the directory, not the file
    for root in (checkout, full):
        (root / "lua").mkdir(parents=True)
        (root / "lua" / "rdns_scorer.lua").write_text("")
    monkeypatch.setattr(integrations, "CHECKOUT", checkout)
    assert integrations.shipped_dir("lua", "rdns_scorer.lua", [full]) == checkout / "lua"
    monkeypatch.setattr(integrations, "CHECKOUT", empty)
    assert integrations.shipped_dir("lua", "rdns_scorer.lua", [partial, full]) == full / "lua"
    # No roots given is no roots, not the install roots.
    monkeypatch.setattr(integrations, "install_roots", lambda: [full])
    with pytest.raises(FileNotFoundError) as error:
        integrations.shipped_dir("lua", "rdns_scorer.lua", [])
    assert str(error.value) == f"rdns_scorer.lua not found in any of: {empty / 'lua'}"


def test_missing_files_name_every_place_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrations, "CHECKOUT", tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        integrations.shipped_dir("spamassassin", "RdnsScorer.pm", roots=[tmp_path / "r"])
    assert str(tmp_path / "spamassassin") in str(error.value)
    assert str(tmp_path / "r" / "spamassassin") in str(error.value)


def test_make_removes_a_venv_that_failed_half_way(tmp_path: Path) -> None:
    # Regression: Debian's python3 without python3-venv leaves .venv/bin/python behind
    # when `-m venv` fails, and every later `make run` failed on the missing pip.
    fake_python = tmp_path / "python"
    fake_python.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
        f'  {sys.executable} -m venv --without-pip "$3"; echo "ensurepip is not available" >&2\n'
        "  exit 1\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake_python.chmod(0o755)
    venv = tmp_path / "venv"
    for _ in range(2):  # the second run must fail the same way, not on a stale venv
        done = subprocess.run(
            [
                "make",
                "-C",
                str(REPO),
                f"{venv}/bin/python",
                f"VENV={venv}",
                f"PYTHON={fake_python}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "ensurepip is not available" in done.stderr
        assert not venv.exists()


def test_make_installs_debian_packages_without_removing_any(tmp_path: Path) -> None:
    # Regression: postfix conflicts with every other MTA, and `apt-get install -y` removed
    # the host's exim4 or sendmail to install it. Now apt-get removes nothing, and make
    # stops, saying why, when a package cannot be installed without a removal.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    (stubs / "debconf-set-selections").write_text("#!/bin/bash\ncat >/dev/null\n")
    (stubs / "id").write_text("#!/bin/bash\necho 0\n")  # root, as make test is run
    (stubs / "apt-get").write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {calls}\n'
        'if [ "$1" = install ]; then\n'
        '  for arg; do [ "$arg" = --no-remove ] && { echo "E: Packages need to be removed '
        'but remove is disabled." >&2; exit 100; }; done\n'
        "fi\n"
    )
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    make = shutil.which("make")
    assert make is not None
    done = subprocess.run(
        # A command no machine has (postfix itself is found in /usr/sbin where installed).
        [make, "-C", str(REPO), "debian-packages", "PACKAGES=rdns-scorer-no-such-command:postfix"],
        env={"PATH": str(stubs)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    installs = [line for line in calls.read_text().splitlines() if line.startswith("install")]
    assert len(installs) == 1 and "--no-remove" in installs[0].split(), installs
    assert installs[0].split()[-1] == "postfix"
    assert done.returncode != 0
    assert "remove is disabled" in done.stderr
    assert "could not install: postfix (make removes no installed package" in done.stderr


def _fake_venv(venv: Path, version: str) -> None:
    """A venv as `make venv` leaves it, made by Python ``version``, interpreter: ours."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}.1\n")
    (venv / ".run-installed").touch()


def _make_n_venv(venv: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(REPO), "venv",
         f"VENV={venv}", f"PYTHON={python}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_make_keeps_a_venv_of_the_same_python(tmp_path: Path) -> None:
    _fake_venv(tmp_path / "venv", "{}.{}".format(*sys.version_info[:2]))
    done = _make_n_venv(tmp_path / "venv", sys.executable)
    assert done.returncode == 0, done.stderr
    assert "Nothing to be done" in done.stdout  # not made anew, nothing installed


@pytest.mark.parametrize("stale", ["other-python", "interpreter-gone"])
def test_make_makes_a_stale_venv_anew(tmp_path: Path, stale: str) -> None:
    # Regression: Debian 12 -> 13 turns python3 from 3.11 into 3.13 and removes
    # python3.11; the .venv made before was kept (its stamp was newer than pyproject.toml)
    # and `make run` failed on `No module named 'scorer'` or an interpreter not found,
    # every time, until the admin found `make clean`.
    venv = tmp_path / "venv"
    if stale == "other-python":
        _fake_venv(venv, "3.10")
    else:
        _fake_venv(venv, "{}.{}".format(*sys.version_info[:2]))
        (venv / "bin" / "python").unlink()
        (venv / "bin" / "python").symlink_to(tmp_path / "python3.11-removed")
    done = _make_n_venv(venv, sys.executable)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"rm -rf {venv}" in lines
    assert f"{venv}/bin/pip install -q -e ." in lines


def test_make_refuses_a_python_older_than_required(tmp_path: Path) -> None:
    # Regression: a Python below requires-python got a venv, then pip's "requires a
    # different Python"; the venv stayed, so `make run PYTHON=python3.11` failed the same way.
    old = tmp_path / "python3"
    old.write_text(
        "#!/bin/bash\n"
        'case "$*" in\n'
        '  -V) echo "Python 3.10.13";;\n'
        '  *"< (3, 11)"*) exit 1;;\n'
        f'  *) exec {sys.executable} "$@";;\n'
        "esac\n"
    )
    old.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-C", str(REPO), "venv", f"VENV={venv}", f"PYTHON={old}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "rdns-scorer needs Python 3.11 or newer" in done.stderr
    assert "is Python 3.10.13" in done.stderr
    assert not venv.exists()


def _stubbed_make(tmp_path: Path, packages: str, uid: int) -> tuple[int, str, list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    calls.touch()
    (stubs / "apt-get").write_text(f'#!/bin/bash\necho "$*" >> {calls}\n')
    (stubs / "debconf-set-selections").write_text("#!/bin/bash\ncat >/dev/null\n")
    (stubs / "id").write_text(f"#!/bin/bash\necho {uid}\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    done = subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", "-C", str(REPO), "debian-packages",
         f"PACKAGES={packages}"],
        env={"PATH": str(stubs)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stderr, calls.read_text().splitlines()


def test_make_finds_debian_packages_in_sbin(tmp_path: Path) -> None:
    # Regression: unbound, spamd and postfix are in /usr/sbin, not on a Debian user's
    # PATH, so `make lint` as a user tried to install them again (and failed).
    returncode, _, calls = _stubbed_make(tmp_path, "ldconfig:libc-bin", uid=1000)
    assert returncode == 0 and calls == []


def test_make_says_what_to_install_when_not_root(tmp_path: Path) -> None:
    # Regression: as a user, apt-get failed on its lock and make blamed the MTA.
    returncode, stderr, calls = _stubbed_make(tmp_path, "rdns-scorer-no-such:unbound", uid=1000)
    assert returncode != 0 and calls == []
    assert "apt-get install --no-install-recommends unbound" in stderr
    assert "MTA" not in stderr
