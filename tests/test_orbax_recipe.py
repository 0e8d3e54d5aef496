"""The README's Orbax recipe: an iterator's state saved inside the same Orbax checkpoint
as the model's parameters (``ocp.args.Composite`` of ``StandardSave`` and ``JsonSave``),
restored in a fresh process, continues exactly where the saved iterator stood."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp
    import tensorbridge as tb

    ds = tb.data.Dataset.range(40).shuffle(8, seed=1).batch(3)
    ckpt_dir, mode = sys.argv[1], sys.argv[2]
    mngr = ocp.CheckpointManager(ckpt_dir, item_names=("params", "data"))
    if mode == "save":
        it = ds.iterator()
        seen = [np.asarray(next(it)).tolist() for _ in range(4)]
        params = {"w": jnp.arange(6.0).reshape(2, 3)}
        mngr.save(100, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), data=ocp.args.JsonSave(it.get_state())))
        mngr.wait_until_finished()
        rest = [np.asarray(e).tolist() for e in it]
    else:
        step = mngr.latest_step()
        got = mngr.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))
        it = ds.iterator(got.data)
        seen = [np.asarray(got.params["w"]).tolist(), step]
        rest = [np.asarray(e).tolist() for e in it]
    mngr.close()
    print(json.dumps({"seen": seen, "rest": rest}))
    """
)


def run(tmp_path, mode):
    script = tmp_path / "orbax_recipe.py"
    script.write_text(SCRIPT)
    p = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ckpt"), mode],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_orbax_composite_checkpoint_resumes_the_iterator(tmp_path):
    saved = run(tmp_path, "save")
    restored = run(tmp_path, "restore")
    params, step = restored["seen"]
    assert step == 100
    assert params == np.arange(6.0).reshape(2, 3).tolist()
    # The restored iterator yields exactly what the saved one went on to yield.
    assert restored["rest"] == saved["rest"]
    assert len(saved["rest"]) == 14 - 4  # ceil(40 / 3) batches, 4 taken before the save
    # Before and after the checkpoint together: every element exactly once.
    flat = [x for batch in saved["seen"] + restored["rest"] for x in batch]
    assert sorted(flat) == list(range(40))
