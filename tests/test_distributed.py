"""Data-parallel training (what `torchrun -m diffroll train` runs): two gloo processes on the CPU
follow the run of one process with the doubled batch, and a killed two-process run resumes."""
import json
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffroll.core.config import get_config
from diffroll.training.trainer import Trainer
from toy_data import toy_segments

STEPS = 8


def cfg_of(batch_size: int, max_steps: int = STEPS):
    return get_config("smoke", batch_size=batch_size, max_steps=max_steps, checkpoint_every=4, validate_every=0,
                      log_every=1, precision="fp32", ema_decay=0.9, lr=2e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run_dir: str, batch_size: int, max_steps: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        trainer = Trainer(cfg_of(batch_size, max_steps), paired=toy_segments(), run_dir=run_dir, progress=False)
        start = trainer.step
        history = trainer.fit()
        if rank == 0:
            losses = [r["loss"] for r in history if "loss" in r]
            with open(f"{run_dir}/losses-{max_steps}.json", "w") as f:
                json.dump({"start": start, "losses": losses}, f)
    finally:
        dist.destroy_process_group()


def run_two_processes(run_dir, batch_size: int, max_steps: int = STEPS) -> dict:
    mp.spawn(_worker, args=(2, _free_port(), str(run_dir), batch_size, max_steps), nprocs=2, join=True)
    return json.loads((run_dir / f"losses-{max_steps}.json").read_text())


def one_process_losses(run_dir, batch_size: int) -> list[float]:
    torch.set_num_threads(1)
    history = Trainer(cfg_of(batch_size), paired=toy_segments(), run_dir=run_dir, progress=False).fit()
    return [r["loss"] for r in history if "loss" in r]


def test_two_processes_follow_one_process_with_the_doubled_batch(tmp_path):
    two = run_two_processes(tmp_path / "ddp", batch_size=2)
    one = one_process_losses(tmp_path / "one", batch_size=4)
    assert two["start"] == 0 and len(two["losses"]) == len(one) == STEPS
    np.testing.assert_allclose(two["losses"], one, rtol=1e-4, atol=1e-6)
    assert not np.allclose(one, one_process_losses(tmp_path / "half", batch_size=2), rtol=1e-4)  # the test can fail


def test_a_killed_two_process_run_resumes_where_it_stopped(tmp_path):
    straight = run_two_processes(tmp_path / "a", batch_size=2)
    first = run_two_processes(tmp_path / "b", batch_size=2, max_steps=4)  # stops after its step-4 checkpoint
    resumed = run_two_processes(tmp_path / "b", batch_size=2)
    assert first["start"] == 0 and resumed["start"] == 4
    np.testing.assert_allclose(first["losses"] + resumed["losses"][-4:], straight["losses"], rtol=1e-4, atol=1e-6)
