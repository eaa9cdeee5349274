"""The SLURM launcher: one array job per layout, each asking for its runs' own nodes x devices; SIGTERM ahead
of the time limit, srun given the CPUs per task, a task that stopped on the signal requeued. Checked on the
batch scripts of every regime of experiments/sweep.yaml, and with Lightning's SLURM environment built from
the variables SLURM sets for those scripts."""

import copy
import functools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment

from jepa_lit.config import load_yaml
from jepa_lit.study import sweep
from jepa_lit.study.launchers import Resources, run_resources, sbatch_script, slurm_arrays
from jepa_lit.study.runs import expand, merged_config
from jepa_lit.study.spec import load_spec

SWEEP = Path(__file__).resolve().parents[1] / "experiments" / "sweep.yaml"


def sbatch_options(script: str) -> dict[str, str]:
    return dict(re.match(r"#SBATCH --([\w-]+)=?(.*)", line).groups()
                for line in script.splitlines() if line.startswith("#SBATCH "))


@functools.cache
def read_yaml(file: str):
    return load_yaml(file)


def trainer_layout(run) -> tuple[int, int]:
    """(devices, num_nodes) of a run as its config says, read independently of the launcher."""
    trainer = merged_config([copy.deepcopy(read_yaml(f)) for f in run.config_stack], run.fit_overrides)["trainer"]
    return trainer["devices"], trainer.get("num_nodes", 1)


@pytest.fixture(scope="module")
def study_arrays():
    spec = load_spec(str(SWEEP), "full")
    return spec, slurm_arrays(expand(spec))


@pytest.mark.slow  # expands the whole study (~100 runs)
def test_every_regime_gets_its_own_layout(study_arrays):
    spec, arrays = study_arrays
    regimes = {run.regime for runs in arrays.values() for run in runs if run.pretrain}
    assert regimes == set(spec.regimes) == {"mixed", "ucf101", "synthetic"}
    for resources, runs in arrays.items():
        for run in runs:
            if run.pretrain:
                devices, nodes = trainer_layout(run)
                assert (resources.nodes, resources.tasks_per_node, resources.gpus_per_node) == (nodes, devices, devices)
            else:  # the random_init control only probes
                assert resources == Resources(1, 1, 1)
    by_regime = {run.regime: resources for resources, runs in arrays.items() for run in runs if run.pretrain}
    assert by_regime["mixed"] == by_regime["ucf101"] == Resources(1, 4, 4)
    assert by_regime["synthetic"] == Resources(1, 2, 2)  # regimes/synthetic.yaml: devices 2, not the base's 4


@pytest.mark.slow  # expands the whole study (~100 runs)
def test_each_batch_script_asks_for_its_layout_and_saves_before_the_time_limit(study_arrays, tmp_path):
    spec, arrays = study_arrays
    for resources, runs in arrays.items():
        script = sbatch_script(runs, spec, resources, python="/venv/bin/python")
        options = sbatch_options(script)
        assert options["nodes"] == str(resources.nodes)
        assert options["ntasks-per-node"] == str(resources.tasks_per_node)
        assert options["gres"] == f"gpu:{resources.gpus_per_node}"
        assert options["cpus-per-task"] == "8" and options["time"] == "48:00:00"
        assert options["signal"] == "TERM@300" and "requeue" in options
        assert options["array"] == f"0-{len(runs) - 1}"
        (command,) = [line for line in script.splitlines() if "-m jepa_lit.study sweep" in line]
        fit_prefix = shlex.split(command)[shlex.split(command).index("--fit-prefix") + 1]
        assert shlex.split(fit_prefix) == ["srun", "--kill-on-bad-exit=1", "--cpus-per-task=8"]
        check_requeue(script, tmp_path)


def check_requeue(script: str, tmp_path: Path) -> None:
    """The script run by bash with the sweep replaced by `exit STATUS` and scontrol by a recorder: it
    requeues its own array task after 143 (the fit stopped on SIGTERM), and after nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/scontrol.log\n")
    (bin_dir / "scontrol").chmod(0o755)
    for status in (0, 1, 130, 143):
        text = re.sub(r"^/venv/bin/python -m jepa_lit.study sweep .*$", f"(exit {status})", script, flags=re.M)
        text = re.sub(r"^cd .*$", "", text, flags=re.M)
        log = tmp_path / "scontrol.log"
        log.unlink(missing_ok=True)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "0",
               "SLURM_ARRAY_JOB_ID": "77"}
        result = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True)
        assert result.returncode == status
        assert (log.read_text() if log.exists() else "") == ("requeue 77_0\n" if status == 143 else "")


def slurm_variables(options: dict[str, str], procid: int) -> dict[str, str]:
    """What SLURM sets in task ``procid`` of an srun under these #SBATCH options (block distribution)."""
    nodes, per_node = int(options["nodes"]), int(options["ntasks-per-node"])
    return {"SLURM_NTASKS": str(nodes * per_node), "SLURM_NTASKS_PER_NODE": str(per_node),
            "SLURM_NNODES": str(nodes), "SLURM_PROCID": str(procid), "SLURM_LOCALID": str(procid % per_node),
            "SLURM_NODEID": str(procid // per_node), "SLURM_JOB_NAME": options["job-name"],
            "SLURM_JOB_ID": "1234", "SLURM_NODELIST": "gpu[01-02]" if nodes > 1 else "gpu01"}


@pytest.mark.slow  # expands the whole study (~100 runs)
def test_lightnings_slurm_environment_sees_devices_times_nodes(study_arrays, monkeypatch):
    spec, arrays = study_arrays
    for resources, runs in arrays.items():
        options = sbatch_options(sbatch_script(runs, spec, resources))
        for run in runs:
            devices, nodes = trainer_layout(run) if run.pretrain else (1, 1)
            world = int(options["nodes"]) * int(options["ntasks-per-node"])
            for procid in range(world):
                for key, value in slurm_variables(options, procid).items():
                    monkeypatch.setenv(key, value)
                environment = SLURMEnvironment()
                assert SLURMEnvironment.detect()
                assert environment.world_size() == devices * nodes
                environment.validate_settings(num_devices=devices, num_nodes=nodes)  # raises on a mismatch
                assert environment.global_rank() == procid and environment.local_rank() < devices


@pytest.mark.slow  # expands the whole study (~100 runs)
def test_a_run_without_a_number_of_devices_is_refused(tmp_path, study_arrays):
    config = tmp_path / "auto.yaml"
    config.write_text("trainer:\n  devices: auto\n")
    run = copy.copy(next(iter(study_arrays[1].values()))[0])
    run.config_stack = [*run.config_stack, str(config)]
    with pytest.raises(ValueError, match=r"trainer.devices: --launcher slurm needs a number .* got 'auto'"):
        run_resources(run)


@pytest.mark.parametrize("status, exit_status", [("interrupted", 143), ("failed", 1), ("done", 0)])
def test_the_sweep_exits_143_when_its_unfinished_runs_were_interrupted(tmp_path, monkeypatch, status, exit_status):
    """143 is what makes a SLURM task requeue itself: only when every unfinished run stopped on SIGTERM."""
    from jepa_lit.study.executor import Executor

    monkeypatch.chdir(tmp_path)  # the spec's output folder is relative to the working directory
    monkeypatch.setattr(Executor, "__call__", lambda self, run, gpus=None: status)
    assert sweep.main([str(SWEEP), "--scale", "smoke", "--run-id", "synthetic/baseline/seed_0"]) == exit_status
