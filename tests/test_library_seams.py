"""The private library attributes jepa-lit uses (jepa_lit/library_seams.py) are where it expects them on the
installed versions; an upgrade that moves one fails here by name. And the public attribute that replaced
a private one (DDP's find_unused_parameters) is still public."""

import pytest
import torch
from jsonargparse import ArgumentParser
from typing import Literal, Optional, Union

from jepa_lit.cli.hints import parser_keys
from jepa_lit.library_seams import (LibraryChanged, keep_compiled_backward_buffers, parser_actions,
                                    subcommand_parsers, widen_argument_type)


def test_parser_actions_and_subcommand_parsers_reach_every_key():
    fit = ArgumentParser()
    fit.add_argument("--trainer.max_steps", type=int, default=1)
    root = ArgumentParser()
    root.add_subcommands().add_subcommand("fit", fit)
    subcommands = [a for a in parser_actions(root) if list(subcommand_parsers(a))]
    assert len(subcommands) == 1 and list(subcommand_parsers(subcommands[0])) == [fit]
    assert "trainer.max_steps" in parser_keys(root)
    assert list(subcommand_parsers(parser_actions(fit)[-1])) == []  # not a subcommands action
    with pytest.raises(LibraryChanged, match="_actions"):
        parser_actions(object())


def test_lightnings_precision_argument_can_be_widened_to_take_auto():
    from lightning.pytorch import Trainer
    from lightning.pytorch.cli import LightningArgumentParser

    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(Trainer, "trainer")
    with pytest.raises(Exception):
        parser.parse_args(["--trainer.precision", "auto"])
    widen_argument_type(parser, "trainer.precision", lambda hint: Optional[Union[hint, Literal["auto"]]])
    assert parser.parse_args(["--trainer.precision", "auto"]).trainer.precision == "auto"
    assert parser.parse_args(["--trainer.precision", "bf16-mixed"]).trainer.precision == "bf16-mixed"
    with pytest.raises(ValueError, match="no argument 'trainer.precisoin'"):
        widen_argument_type(parser, "trainer.precisoin", lambda hint: hint)
    with pytest.raises(LibraryChanged, match="without _typehint"):
        widen_argument_type(parser, "help", lambda hint: hint)  # argparse's help action is not typed


def test_compiled_backward_buffers_switch_exists_and_turns_off(monkeypatch):
    import torch._functorch.config as functorch_config

    assert isinstance(functorch_config.donated_buffer, bool)
    monkeypatch.setattr(functorch_config, "donated_buffer", True)
    keep_compiled_backward_buffers()
    assert functorch_config.donated_buffer is False


def test_ddp_says_whether_it_finds_unused_parameters(tmp_path):
    """JEPAModule.on_after_backward reads it from the strategy's wrapped model (public; no _ddp_kwargs)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for find in (True, False):
            wrapped = DistributedDataParallel(torch.nn.Linear(2, 2), find_unused_parameters=find)
            assert wrapped.find_unused_parameters is find
    finally:
        dist.destroy_process_group()
