"""The ``jepa-lit`` command: a LightningCLI for pretraining, plus the ``data`` tools.

    jepa-lit fit --config experiments/smoke.yaml
    jepa-lit fit --config experiments/base.yaml --print_config
    jepa-lit validate | test | predict --config ... --ckpt_path RUN/checkpoints/last.ckpt

Configs stack: a YAML may name others under ``config:`` (read first, then overridden by the file's own
keys), and later ``--config`` flags and ``--key value`` flags override earlier ones.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from lightning.pytorch.cli import LightningCLI

from jepa_lit.module import JEPAModule


class JepaCLI(LightningCLI):
    def after_fit(self) -> None:
        trainer = self.trainer
        if trainer.is_global_zero:
            lines = [f"run directory:   {trainer.log_dir}"]
            checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or getattr(
                trainer.checkpoint_callback, "best_model_path", ""
            )
            if checkpoint:
                lines.append(f"last checkpoint: {checkpoint}")
            if trainer.logger is not None and trainer.logger.save_dir:
                lines.append(f"tensorboard:     tensorboard --logdir {trainer.logger.save_dir}")
            print("\n".join(lines), flush=True)


def run_cli(args: Optional[list[str]] = None, run: bool = True) -> JepaCLI:
    return JepaCLI(
        JEPAModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml"},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(argv: Optional[list[str]] = None) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations otherwise calls the network
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "data":
        from jepa_lit.data.check import main as data_main

        sys.exit(data_main(argv[1:]))
    run_cli(argv)


if __name__ == "__main__":
    main()
