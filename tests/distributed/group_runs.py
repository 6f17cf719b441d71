"""What the data-parallel script tests share: an environment free of any launcher's variables,
one process's command, a group's under Debian's torchrun or started by hand, and how far two sets
of tensors lie apart. Every process listens on 127.0.0.1 only."""
import os
import subprocess

from script_checks import check, free_port

# torchrun's and Slurm's variables: a test's own runs must not join a group the test runs in.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                      "TORCHELASTIC_USE_AGENT_STORE", "SLURM_NTASKS", "SLURM_PROCID",
                      "SLURM_LOCALID")


def clean_environment():
    """This environment without the launcher's variables, one thread a process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in LAUNCHER_VARIABLES:
        env.pop(name, None)
    return env


def run(args, env, out, timeout=300):
    """Runs one command to its end; a non-zero exit is a failure naming `out`."""
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    check(result.returncode == 0, f"{' '.join(args[:6])} … --out {out}: exit {result.returncode}: "
          f"{result.stderr[-1500:]}")
    return result


def torchrun(args, env, out, processes=2):
    """`args` (the program first) in `processes` processes under the real launcher, on a free
    port of 127.0.0.1."""
    # Debian's torchrun (python3-torch 1.13) on Python 3.11 needs --redirects/--tee given as 1:
    # its parser turns "0", the default, into None (IntFlag iteration skips 0).
    return run(["torchrun", "--nnodes", "1", "--nproc_per_node", str(processes), "--rdzv_backend",
                "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--redirects", "1",
                "--tee", "1", "--no_python"] + args, env, out)


def start_ranks(args, env, processes=2):
    """`args` in `processes` processes started by hand, as a launcher would start them (env://
    on a free port of 127.0.0.1); returns them running."""
    port = free_port()
    return [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(env, RANK=str(rank), WORLD_SIZE=str(processes),
                                      LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=str(port)))
            for rank in range(processes)]


def max_difference(a, b):
    """The largest absolute difference between tensors of the same names in `a` and `b`."""
    check(sorted(a) == sorted(b), f"tensor names differ: {sorted(a)[:3]} vs {sorted(b)[:3]}")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if k in b)
