"""``diffroll train``: build the data (rank 0 first under torchrun), train, checkpoint, export."""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from ..core.config import get_config
from ..core.model import count_parameters
from ..core.paths import runs_dir
from ..corpus.segments import training_data
from ..training.checks import check_config, pick_device
from ..training.trainer import Trainer
from .messages import EXIT_OK, UsageError, _say


def cmd_train(args) -> int:
    """Build the data (rank 0 first under torchrun), train, checkpoint, optionally export."""
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("mode", "p", "kernel_size", "channels", "layers", "max_steps",
                                               "max_minutes", "batch_size", "lr", "seed", "precision", "dilation")}
    overrides.update(args.settings)  # --set NAME=VALUE wins over the named options
    try:
        cfg = get_config(args.scale, dataset=args.dataset, path=None if args.data is None else str(args.data),
                         **overrides)
        check_config(cfg)  # every setting, before any work
    except (TypeError, ValueError) as err:
        raise UsageError(str(err).splitlines()[0]) from err
    try:
        device = pick_device(args.device)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {args.device}: {str(err).splitlines()[0]}") from err
    if args.init_from is not None and not args.init_from.is_file():
        raise UsageError(f"--init-from {args.init_from}: no such checkpoint file")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    run_dir = args.run_dir or runs_dir(f"{args.scale}-{cfg.train.mode}")
    try:
        if rank == 0:  # rank 0 builds the corpus and the segment cache; the others then read them
            data = training_data(cfg, root=args.data, val_pieces=args.val_pieces, workers=args.workers,
                                 device=str(device))
        if dist.is_initialized():
            dist.barrier()
        if rank != 0:
            data = training_data(cfg, root=args.data, val_pieces=0, build=False)
        trainer = Trainer(cfg, paired=data["paired"], run_dir=run_dir, val_segments=data["val_segments"],
                          val_pieces=data["val_waves"], device=str(device), init_from=args.init_from,
                          progress=sys.stderr.isatty())
        if rank == 0:
            _say(f"run {run_dir}: {cfg.train.mode}, {count_parameters(trainer.model) / 1e6:.2f} M parameters, "
                 f"{len(data['paired'])} segments, device {device} x {trainer.world}, from step {trainer.step}")
        trainer.fit()
        if rank == 0:
            _say(f"trained to step {trainer.step} ({trainer.wall_seconds / 60:.1f} min of training in total); "
                 f"checkpoint {trainer.checkpoint_path}")
            if args.export_to:
                _say(f"exported {trainer.save_weights(args.export_to, half=True)}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return EXIT_OK
