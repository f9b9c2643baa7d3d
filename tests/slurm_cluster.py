"""A real one-node SLURM cluster for the tests: Debian's slurm-wlm and munge (installed by
`make test`'s set-up, scripts/setup-system.sh), started with a config written into a temporary folder, stopped after."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")


def ensure_installed() -> None:
    """The packages come from `make test`'s set-up (scripts/setup-system.sh); tests only use them."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "scontrol") if not shutil.which(b)]
    if missing:
        raise RuntimeError(
            f"SLURM tests need {', '.join(missing)}: run `make system` (apt-get install {' '.join(PACKAGES)}) or "
            f"`make test`."
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 2
    conf = folder / "slurm.conf"
    conf.write_text(f"""ClusterName=roartest
SlurmctldHost={host}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.sock
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=2
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
NodeName={host} CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return conf


class SlurmCluster:
    def __init__(self, folder: Path):
        self.folder = folder
        for sub in ("state", "spool"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf = write_config(folder)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> "SlurmCluster":
        f = self.folder
        subprocess.run(
            [
                "munged",
                f"--key-file={f}/munge.key",
                f"--socket={f}/munge.sock",
                f"--pid-file={f}/munged.pid",
                f"--log-file={f}/munged.log",
                f"--seed-file={f}/munge.seed",
                "--force",
            ],
            check=True,
        )
        subprocess.run(["slurmctld"], check=True, env=self.env)
        subprocess.run(["slurmd"], check=True, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env
            ).stdout.strip()
            if out == "idle":
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the test SLURM node did not come up: sinfo says {out!r}; logs in {f}")

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.folder / f"{name}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)

    def requeue(self, job: str):
        """``scontrol requeue`` (as a preemption does), then make the job eligible at once: SLURM holds a requeued
        job for 120 s (its BeginTime, set once the killed job has completed) before it may start again; the tests
        need not wait that out."""
        out = self.run("scontrol", "requeue", job)
        deadline = time.time() + 120
        while out.returncode == 0 and time.time() < deadline:
            if self.run("squeue", "-h", "-j", job, "-o", "%T %r").stdout.split() == ["PENDING", "BeginTime"]:
                return self.run("scontrol", "update", f"JobId={job}", "StartTime=now")
            time.sleep(0.2)
        return out

    def run(self, *args, **kwargs):
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, **kwargs)
