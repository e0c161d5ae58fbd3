"""A 2-process CPU run of RetinaNet-Conf under torchrun proves the --launcher pytorch path
(gloo, no CUDA) and that DDP sees a gradient for every parameter of the quality head."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, fast_train_options

TINY_CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"


def test_two_process_cpu_training(small_digits: Path, tmp_path: Path) -> None:
    opts = fast_train_options(max_epochs=1)
    opts.pop("param_scheduler")
    opts["train_dataloader.batch_size"] = 2
    cli_opts = [f"{k}={v}" for k, v in opts.items()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        # --standalone: torchrun's own store binds port 0 and hands the port it got to the
        # workers, so no other process can take it in between (a port found free by binding and
        # releasing it could be taken before torchrun binds it again); --local-addr: the workers
        # reach that store on the loopback address, whatever the host's name resolves to
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr", "127.0.0.1",
         "--nproc_per_node", "2",
         "-m", "retconf.cli", "train", str(TINY_CONF),
         "--launcher", "pytorch", "--work-dir", str(tmp_path), "--data-root", str(small_digits),
         "--cfg-options", *cli_opts],
        capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "terminate called" not in res.stderr  # no rank aborted at exit (see retconf/cli.py)
    record = json.loads((tmp_path / "metrics.json").read_text())
    # 16 images, 2 per process and step, 2 processes -> 4 iterations per epoch.
    assert record["epoch"] == 1 and record["iter"] == 4
    log = next(tmp_path.glob("*/*.log")).read_text()
    assert "Distributed launcher: pytorch" in log and "GPU number: 2" in log  # mmengine says GPU for world size
