"""Every Python line README.md shows runs, and every line whose comment names an error
(``# ValueError: ...``) raises it. What the README takes from the reader's own code
(arrays, a file, a model, a JAX array) is made here first. The Ray Data block needs a
cluster and is tested by tests/test_ray.py instead."""

import ast
import os
import re
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks():
    text = README.read_text(encoding="utf-8")
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "ray.init" not in b]


def reader_namespace(tf):
    np.save("bf16.npy", np.arange(3, dtype=ml_dtypes.bfloat16))
    os.makedirs("shards")
    for i in range(3):
        np.save(f"shards/{i}.npy", np.full((50, 4), i, np.float32))
    model = tf.keras.Sequential([tf.keras.layers.Flatten(), tf.keras.layers.Dense(100)])
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ns = {"images": np.zeros((100, 8, 8, 3), np.uint8), "model": model}
    try:
        import jax.numpy as jnp

        ns["jax_array"] = jnp.arange(4.0)
    except ImportError:
        ns["jax_array"] = np.arange(4.0)  # any __dlpack__ object
    return ns


def test_readme_python_lines_run(tmp_path, monkeypatch):
    tf = pytest.importorskip("tensorflow")
    monkeypatch.chdir(tmp_path)
    ns = reader_namespace(tf)
    found = blocks()
    assert len(found) >= 4
    for i, block in enumerate(found):
        lines = block.splitlines()
        for node in ast.parse(block).body:
            first = lines[node.lineno - 1]
            want = re.search(r"#\s*(\w+Error)\b", first)
            code = compile(ast.Module([node], []), f"README python block {i}", "exec")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(code, ns)
            except ImportError as e:
                # Frameworks the reader may not have installed (to_torch without torch).
                assert "not installed" in str(e), first
                continue
            except Exception as e:
                assert want and type(e).__name__ == want[1], f"{first}: {e!r}"
                continue
            assert not want, f"{first}: did not raise {want[1]}"
        if "tb.convert_file" in block:
            check_files_block(ns)


def check_files_block(ns):
    """What the comments of the files block promise."""
    tb = ns["tb"]
    assert ns["x"].is_view and ns["x"].shape == (100, 28, 28)
    assert tb.io.safetensors_metadata("m.safetensors") == {"format": "np"}
    assert tb.load("x.npz")["x"].dtype == tb.float16
    assert sorted(tb.io.load_safetensors("d.safetensors")) == ["images", "labels"]
    assert set(ns["rec"]) == {"x", "y"}
