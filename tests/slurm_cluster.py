"""A single-node Slurm cluster on this machine for the tests: munged, slurmctld and slurmd from
Debian's ``munge`` and ``slurm-wlm`` (scripts/test.sh installs them as root, as it installs
Chromium), configured in a temporary directory (no /etc change), started for the session and
stopped after it. :func:`start` returns None with the reason where it cannot run (not root, the
packages missing, a daemon that does not come up)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass
class Cluster:
    """A running single-node cluster: its directory, ``SLURM_CONF`` and the one partition."""

    root: Path
    conf: Path
    partition: str

    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(root: Path, host: str, cpus: int, ctld_port: int, slurmd_port: int, partition: str) -> str:
    """A slurm.conf for one node with ``cpus`` CPUs, root as SlurmUser, no accounting (sacct
    then answers nothing: retconf.slurm reads states with squeue), no cgroups."""
    return "\n".join([
        "ClusterName=retconf-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={root}/munge/munge.socket.2",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "MinJobAge=3600", "KillWait=5",
        f"NodeName={host} CPUs={cpus} State=UNKNOWN",
        f"PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""])


def start(root: Path, partition: str = "debug") -> Cluster | str:
    """Start the cluster under ``root``; the :class:`Cluster`, or why it cannot run."""
    if os.geteuid() != 0:
        return "a single-node Slurm needs root (munged and slurmd as root)"
    missing = [d for d in (*DAEMONS, "sbatch", "squeue") if shutil.which(d) is None
               and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing: apt-get install slurm-wlm munge)"
    key = Path("/etc/munge/munge.key")
    if not key.is_file():
        return f"{key} is missing (the munge package creates it)"
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(key, root / "munge" / "munge.key")
    os.chmod(root / "munge" / "munge.key", 0o600)
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, host, os.cpu_count() or 1, _free_port(), _free_port(), partition))
    cluster = Cluster(root, conf, partition)
    m = root / "munge"
    commands = [
        [_which("munged"), "--force", f"--key-file={m}/munge.key", f"--socket={m}/munge.socket.2",
         f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log", f"--seed-file={m}/seed"],
        [_which("slurmctld")], [_which("slurmd")]]
    for cmd in commands:
        res = subprocess.run(cmd, env=cluster.env(), capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            stop(cluster)
            return f"{Path(cmd[0]).name} did not start: {(res.stderr or res.stdout).strip()[-300:]}"
    deadline = time.time() + 60
    while time.time() < deadline:
        res = subprocess.run(["sinfo", "-h", "-o", "%t"], env=cluster.env(), capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip() in ("idle", "mix", "alloc"):
            return cluster
        time.sleep(1)
    log = (root / "log" / "slurmd.log").read_text(errors="replace")[-500:] if (root / "log" / "slurmd.log").exists() else ""
    stop(cluster)
    return f"the Slurm node did not become idle within 60 s: {log}"


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def stop(cluster: Cluster) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged (by their pid files)."""
    subprocess.run(["scancel", "--full", "-u", "root"], env=cluster.env(), capture_output=True)
    for pid_file in (cluster.root / "slurmd.pid", cluster.root / "slurmctld.pid", cluster.root / "munge" / "munged.pid"):
        pid = _pid(pid_file)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
