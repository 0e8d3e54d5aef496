"""The ``tensorbridge`` command that ``pip install .`` installs (a console script
into the same Rust CLI code as the cargo-built binary). NumPy is the oracle for
what ``inspect`` reports and ``convert`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(sys.executable).parent / ("tensorbridge.exe" if os.name == "nt" else "tensorbridge")


def tb(*args: "str | os.PathLike[str] | bytes", cwd: "Path | None" = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(SCRIPT), *map(os.fspath, args)],
        capture_output=True,
        text=True,
        errors="replace",
        cwd=cwd,
        timeout=120,
    )


def test_script_installed_beside_the_interpreter() -> None:
    assert SCRIPT.is_file(), f"{SCRIPT} missing: `pip install .` installs the tensorbridge command"


def test_help_names_the_program() -> None:
    r = tb("--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: tensorbridge <COMMAND>" in r.stdout
    assert "inspect" in r.stdout and "convert" in r.stdout
    assert r.stderr == ""
    sub = tb("convert", "--help")
    assert sub.returncode == 0, sub.stderr
    assert "Usage: tensorbridge convert" in sub.stdout
    assert "--dtype" in sub.stdout and "--casting" in sub.stdout


def test_version_is_the_package_version() -> None:
    r = tb("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tensorbridge {version('tensorbridge')}"


def test_usage_error_is_exit_code_2() -> None:
    r = tb()  # a subcommand is required
    assert r.returncode == 2
    assert "Usage: tensorbridge" in r.stderr
    r = tb("inspect", "--no-such-flag", "x.npy")
    assert r.returncode == 2
    assert "--no-such-flag" in r.stderr


ARRAYS = {
    "f32_2x3": np.arange(6, dtype="<f4").reshape(2, 3),
    "i64_vec": np.arange(-5, 5, dtype="<i8"),
    "u8_scalar": np.array(7, dtype=np.uint8),
    "bool_empty": np.zeros((0, 4), dtype=bool),
    "f64_fortran": np.asfortranarray(np.linspace(0, 1, 12).reshape(3, 4)),
    "big_endian_i2": np.arange(10, dtype=">i2").reshape(5, 2),
    "c128": np.array([1 + 2j, -3.5j], dtype=np.complex128),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_inspect_json_matches_numpy_header(tmp_path: Path, name: str) -> None:
    a = ARRAYS[name]
    path = tmp_path / f"{name}.npy"
    np.save(path, a)
    r = tb("inspect", "--json", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    doc = json.loads(r.stdout)
    (file,) = doc["files"]
    assert file["path"] == str(path)
    assert file["format"] == "npy"
    (info,) = file["arrays"]
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    assert info["shape"] == list(shape) == list(a.shape)
    assert info["descr"] == dtype.str == a.dtype.str
    assert info["dtype"] == a.dtype.name
    assert info["order"] == ("F" if fortran else "C")
    assert info["bytes"] == a.nbytes
    assert info["data_offset"] == offset


def test_inspect_table_and_npz_members(tmp_path: Path) -> None:
    a, b = ARRAYS["f32_2x3"], ARRAYS["i64_vec"]
    np.save(tmp_path / "a.npy", a)
    np.savez_compressed(tmp_path / "ab.npz", a=a, b=b)
    r = tb("inspect", "a.npy", "ab.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DTYPE", "SHAPE", "ORDER", "BYTES", "STORAGE", "STORED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"a.npy", "ab.npz:a", "ab.npz:b"}
    assert "float32" in rows["a.npy"] and "(2, 3)" in rows["a.npy"]
    assert "int64" in rows["ab.npz:b"] and "(10,)" in rows["ab.npz:b"] and "deflate" in rows["ab.npz:b"]
    assert rows["ab.npz:b"].split()[4] == str(b.nbytes)


@pytest.mark.parametrize(
    ("src", "dtype"),
    [("f64_fortran", "float16"), ("i64_vec", "uint8"), ("f32_2x3", "int32"), ("c128", "complex64")],
)
def test_convert_equals_numpy_astype(tmp_path: Path, src: str, dtype: str) -> None:
    a = ARRAYS[src]
    np.save(tmp_path / "in.npy", a)
    r = tb("convert", "in.npy", "out.npy", "--dtype", dtype, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    got = np.load(tmp_path / "out.npy")
    with np.errstate(all="ignore"):
        want = a.astype(dtype)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_convert_npy_to_npz_and_back(tmp_path: Path) -> None:
    a = ARRAYS["big_endian_i2"]
    np.save(tmp_path / "in.npy", a)
    r = tb("convert", "in.npy", "out.npz", "--compress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as z:
        (member,) = z.files
        np.testing.assert_array_equal(z[member], a)
        assert z[member].dtype.newbyteorder("=") == a.dtype.newbyteorder("=")  # same type, any byte order
    r = tb("convert", "out.npz", "back.npy", "--dtype", "float64", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    back = np.load(tmp_path / "back.npy")
    np.testing.assert_array_equal(back, a.astype(np.float64))
    assert back.dtype == np.float64


def test_convert_refused_by_casting_leaves_nothing(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", ARRAYS["f32_2x3"])
    assert not np.can_cast(np.float32, np.int8, casting="safe")
    r = tb("convert", "in.npy", "out.npy", "--dtype", "int8", "--casting", "safe", cwd=tmp_path)
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert "in.npy" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_bad_file_fails_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4',")  # header cut short
    r = tb("inspect", bad)
    assert r.returncode != 0
    assert str(bad) in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    with pytest.raises(Exception):  # noqa: B017 - NumPy refuses it too (its error type varies)
        np.load(bad)
    r = tb("convert", bad, tmp_path / "out.npy")
    assert r.returncode != 0
    assert str(bad) in r.stderr
    assert not (tmp_path / "out.npy").exists()


def test_missing_file_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npy"
    r = tb("inspect", missing)
    assert r.returncode == 1
    assert str(missing) in r.stderr


@pytest.mark.skipif(os.name != "posix", reason="non-UTF-8 file names are a POSIX matter")
def test_non_utf8_file_name_reaches_the_file(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xff.npy"
    a = ARRAYS["i64_vec"]
    with open(raw, "wb") as f:
        np.save(f, a)
    r = subprocess.run([os.fspath(SCRIPT), "inspect", "--json", raw], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout.decode("utf-8", "replace"))["files"][0]["arrays"]
    assert info["shape"] == list(a.shape)


def test_main_restores_default_sigint_and_exits_with_the_code() -> None:
    code = (
        "import signal, sys\n"
        "from tensorbridge._cli import main\n"
        "sys.argv = ['tensorbridge', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, signal.getsignal(signal.SIGINT) == signal.SIG_DFL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"tensorbridge {version('tensorbridge')}", "exit 0 True"]


def test_cli_main_wants_a_list_of_strings() -> None:
    from tensorbridge import _core

    with pytest.raises(TypeError):
        _core._cli_main("tensorbridge --help")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/proc/self/maps").exists(), reason="needs FIFOs and /proc")
def test_ctrl_c_stops_the_command_at_once(tmp_path: Path) -> None:
    """SIGINT while the Rust code blocks (opening a FIFO no one writes) ends the
    process as it ends a native command; Python's own handler would only set a flag
    that is never looked at, and the command would hang."""
    import signal
    import time

    fifo = tmp_path / "blocks.npy"
    os.mkfifo(fifo)
    p = subprocess.Popen([os.fspath(SCRIPT), "inspect", os.fspath(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait until the compiled module is loaded (the command is running), then a bit.
        deadline = time.monotonic() + 60
        while "_core" not in Path(f"/proc/{p.pid}/maps").read_text():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        assert p.poll() is None, "the command should be blocked on the FIFO"
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=10)
        assert rc == -signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
