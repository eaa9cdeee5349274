"""JEPAModule: V-JEPA 2.1 pretraining with pluggable auxiliary objectives.

One step: targets from the EMA encoder on the full clip (each level layer-normalised); for each mask
generator, the online encoder on the context tokens and the predictor at the targets and the
context; base loss (L1 prediction + distance-weighted context loss) plus every objective's terms;
after each optimizer step, the EMA target follows the online encoder.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

import jepa_lit
from jepa_lit.checkpointing.init_from import load_weights_from
from jepa_lit.errors import CheckpointError, ConfigError
from jepa_lit.guard import GuardConfig, LossGuard, NonFiniteLossError
from jepa_lit.library_seams import keep_compiled_backward_buffers
from jepa_lit.losses import context_loss, prediction_loss
from jepa_lit.masks import MaskSampler, MultiBlock3D
from jepa_lit.models import Predictor, VisionTransformer
from jepa_lit.objectives.base import Objective
from jepa_lit.schedules import OptimizerConfig, ema_momentum_at, linear_ramp
from jepa_lit.step import GeneratorOutputs, StepOutputs, StepRecord

# Hyperparameters saved in checkpoints include this config dataclass; let weights-only loading accept it.
torch.serialization.add_safe_globals([OptimizerConfig, GuardConfig])

# The study's multiblock masks; a default object (so that --print_config shows it), never used as is.
STUDY_MASKS = lazy_instance(MultiBlock3D)


DATA_SETTINGS = ("num_frames", "crop_size")  # recorded in checkpoints; a resume must keep them


class JEPAModule(L.LightningModule):
    """Args:
        encoder: the video ViT (the online / context encoder; the EMA target is a copy of it).
        mask_sampler: draws context / target token sets: per mask generator, one pair per cut group
            of the batch (the groups' index lists have different lengths, so each group is one encoder and
            predictor pass; docs/reproducing.md).
        mask_tokens: "shared" (the study's release: every generator's targets start from one learned
            token) or "per_generator" (one learned token per mask generator).
        objectives: auxiliary objectives added to the base loss (each returns named terms); their heads
            are created here, sized to the encoder (``Objective.build``).
        predictor_width, predictor_depth, predictor_heads: the predictor ViT (study: 256, 8, 8).
        target_encoder: "ema" (V-JEPA) or "online" (no-EMA variants: the online encoder on the full
            clip, with gradient, is the target and the encoder that gets evaluated).
        ema_momentum, ema_final_momentum: constant momentum, or a linear schedule to the final value.
        context_loss_weight: lambda of the dense context loss, reached at ``context_loss_end``.
        context_loss_start, context_loss_end: the ramp, in ``context_loss_unit``: "fraction" of the run's
            optimizer steps (study: 0 until half way, then linear to 0.5 at the end) or absolute optimizer
            "steps" (the release's Lambda_LinearWarmupHold: 15,000 -> 30,000 whatever the run's length, so
            its 5,000-step synthetic runs never had a context loss; experiments/regimes/synthetic.yaml).
        optimizer: AdamW, lr and weight-decay schedules.
        guard: what to do with non-finite losses / gradients and loss spikes.
        compile_model: torch.compile the encoders and the predictor (GPU runs; compiling costs minutes).
        init_from: a jepa-lit checkpoint whose weights (encoders, predictor, objective heads where they
            match) start this run: a fine-tune from a checkpoint, as a new run (step 0, new optimizer).
            ``--ckpt_path`` instead resumes the same run and refuses other settings (docs/checkpoints.md).
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        mask_sampler: Optional[MaskSampler] = STUDY_MASKS,
        objectives: Optional[list[Objective]] = None,
        predictor_width: int = 256,
        predictor_depth: int = 8,
        predictor_heads: int = 8,
        mask_tokens: Literal["shared", "per_generator"] = "shared",
        target_encoder: Literal["ema", "online"] = "ema",
        ema_momentum: float = 0.99925,
        ema_final_momentum: Optional[float] = None,
        context_loss_weight: float = 0.5,
        context_loss_start: float = 0.5,
        context_loss_end: float = 1.0,
        context_loss_unit: Literal["fraction", "steps"] = "fraction",
        optimizer: Optional[OptimizerConfig] = OptimizerConfig(),
        guard: Optional[GuardConfig] = GuardConfig(),
        compile_model: bool = False,
        init_from: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "mask_sampler", "objectives"])
        self.encoder = encoder
        # The default object is shared by every module built without one; the sampler holds its rank.
        self.mask_sampler = MultiBlock3D() if mask_sampler is STUDY_MASKS or mask_sampler is None else mask_sampler
        self.objectives = nn.ModuleList(objectives or [])
        self._check_objective_names()
        for objective in self.objectives:  # heads sized to this encoder, before DDP or a checkpoint sees them
            objective.build(encoder.embed_dim, encoder.num_levels)
        if mask_tokens not in ("shared", "per_generator"):
            raise ValueError(f"mask_tokens={mask_tokens!r}; expected 'shared' or 'per_generator'")
        self.mask_token_mode = mask_tokens
        self.predictor = Predictor(
            encoder_dim=encoder.embed_dim,
            width=predictor_width,
            depth=predictor_depth,
            num_heads=predictor_heads,
            num_mask_tokens=1 if mask_tokens == "shared" else self.mask_sampler.num_generators,
            num_levels=encoder.num_levels,
            rope_interleave=encoder.rope_interleave,
            interpolate_rope=encoder.interpolate_rope,
            patch_size=encoder.patch_size,
            activation_checkpointing=encoder.activation_checkpointing,
        )
        self.target_mode = target_encoder
        self.target_encoder = None
        if target_encoder == "ema":
            self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        elif target_encoder != "online":
            raise ValueError(f"target_encoder={target_encoder!r}; expected 'ema' or 'online'")
        self.ema_momentum, self.ema_final_momentum = ema_momentum, ema_final_momentum
        self.context_loss_weight = context_loss_weight
        self.context_loss_start, self.context_loss_end = context_loss_start, context_loss_end
        if context_loss_unit not in ("fraction", "steps"):
            raise ValueError(f"context_loss_unit={context_loss_unit!r}; expected 'fraction' or 'steps'")
        self.context_loss_unit = context_loss_unit
        self.optim = optimizer or OptimizerConfig()  # None (configs saved before 0.2): the defaults
        self.last_step: Optional[StepRecord] = None  # the latest training step, for the callbacks
        self.guard = LossGuard(guard or GuardConfig())
        self.compile_model = compile_model
        if init_from:
            load_weights_from(self, init_from)  # a new run from another run's weights (issue 24)
        # Set by callbacks.preemption on SIGTERM; the guard's all-reduce carries it, so every rank learns
        # at the same step that some rank must stop (stop_agreed, read at the batch's end).
        self.stop_requested = False
        self.skip_step = False  # this step is skipped on every rank: no optimizer update, no EMA update

    @property
    def stop_agreed(self) -> bool:
        """Some rank received SIGTERM before this step's all-reduce: every rank stops after this step."""
        return self.guard.stop_agreed

    # ----- what gets evaluated -----------------------------------------------------------------
    @property
    def eval_encoder(self) -> VisionTransformer:
        """The encoder a probe should use: the EMA target, or the online encoder of no-EMA runs."""
        return self.target_encoder if self.target_encoder is not None else self.encoder

    # ----- schedules ---------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        """The schedules' horizon: the run's optimizer steps (max_steps, or estimated from epochs)."""
        trainer = self._trainer
        if trainer is None:
            return 1
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return trainer.max_steps
        if trainer.state.fn == "fit":
            return max(1, int(trainer.estimated_stepping_batches))
        return 1

    def context_weight_at(self, step: int) -> float:
        scale = self.total_steps if self.context_loss_unit == "fraction" else 1
        start = int(self.context_loss_start * scale)
        end = int(self.context_loss_end * scale)
        return linear_ramp(step, start, end, self.context_loss_weight)

    # ----- the step ----------------------------------------------------------------------------
    def target_features(self, clip: Tensor) -> Tensor:
        """[B, N, 4D] hierarchical target features, each D-wide level layer-normalised (no affine)."""
        if self.target_encoder is None:
            features = self.encoder(clip, hierarchical=True)  # no-EMA: with gradient
        else:
            with torch.no_grad():
                features = self.target_encoder(clip, hierarchical=True)
        levels = features.unflatten(-1, (self.encoder.num_levels, self.encoder.embed_dim))
        return F.layer_norm(levels, (self.encoder.embed_dim,)).flatten(-2)

    def forward_step(self, clip: Tensor, step: int, mask_step: Optional[int] = None) -> StepOutputs:
        """The step's outputs; masks are drawn for ``mask_step`` (default: ``step``, which also sets the
        schedules the loss terms follow)."""
        grid = self.encoder.token_grid(clip.shape)
        masks = self.mask_sampler(clip, grid, step if mask_step is None else mask_step)
        target = self.target_features(clip)
        generators = []
        for index, groups in enumerate(masks):
            mask_index = 0 if self.mask_token_mode == "shared" else index
            outputs = []
            for pair in groups:  # one pass per cut group: its index lists have their own lengths
                rows = clip if pair.rows is None else clip[pair.rows]
                context = self.encoder(rows, token_idx=pair.context, hierarchical=True)
                predictions, context_predictions = self.predictor(context, pair.context, pair.target, grid,
                                                                  mask_index)
                outputs.append(GeneratorOutputs(pair, context, predictions, context_predictions))
            generators.append(outputs)
        return StepOutputs(
            clip=clip,
            target=target,
            generators=generators,
            grid=grid,
            embed_dim=self.encoder.embed_dim,
            num_levels=self.encoder.num_levels,
            step=step,
            max_steps=self.total_steps,
        )

    def loss_terms(self, outputs: StepOutputs) -> dict[str, Tensor]:
        terms = {"pred": prediction_loss(outputs)}
        weight = self.context_weight_at(outputs.step)
        if weight > 0:
            terms["context"] = weight * context_loss(outputs)
        else:  # keep the context head in the graph (DDP needs every parameter used) at no cost
            terms["context"] = sum(out.context_predictions.sum() for groups in outputs.generators
                                   for out in groups) * 0.0
        for objective in self.objectives:
            terms.update(objective(outputs))
        return terms

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Optional[Tensor]:
        outputs = self.forward_step(batch["video"], self.global_step)
        terms = self.loss_terms(outputs)
        loss = torch.stack(list(terms.values())).sum()
        self.last_step = StepRecord(outputs, terms, batch["video"])  # read by callbacks before backward
        batch_size = batch["video"].shape[0]
        skip = self.guard.check(terms, loss, self.global_step, self.stop_requested)  # the same on every rank
        self.guard.batches += 1
        self.skip_step = skip is not None
        if self.skip_step:
            self.guard.skipped += 1
            rank_zero_warn(f"skipping step {self.global_step}: {skip}")
            self.log("train/skipped_steps", float(self.guard.skipped), batch_size=batch_size)
            return self.zero_loss()
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=batch_size)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        # Host tensors: Lightning copies a logged Python float to the device, a blocking copy every step.
        self.log("train/context_weight", torch.tensor(self.context_weight_at(self.global_step)),
                 batch_size=batch_size)
        if self.target_encoder is not None:
            self.log("train/ema_momentum", torch.tensor(self._momentum()), batch_size=batch_size)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # Fixed masks per batch make the validation loss comparable across epochs; the loss weights
        # follow the run's schedules, as in training.
        outputs = self.forward_step(batch["video"], step=self.global_step, mask_step=batch_idx)
        terms = self.loss_terms(outputs)
        loss = torch.stack(list(terms.values())).sum()
        batch_size = batch["video"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=batch_size, sync_dist=True)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any]:
        """Final-layer features [B, N, D] of the evaluation encoder, with the labels."""
        return {"features": self.eval_encoder(batch["video"]), "label": batch.get("label")}

    def zero_loss(self) -> Tensor:
        """A loss of 0 over every trained parameter: what a skipped step backpropagates. DDP needs a gradient for
        each parameter on every rank (Lightning refuses a step that returns None under DDP), and the step's own
        loss would give non-finite ones (0 x nan = nan). One mechanism with one process or many."""
        return torch.stack([p.sum() for p in self.parameters() if p.requires_grad]).sum() * 0.0

    # ----- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.optim.weight_decay, "scheduled_wd": True},
            {"params": no_decay, "weight_decay": 0.0, "scheduled_wd": False},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, betas=self.optim.betas, eps=self.optim.eps,
                                      **self.optim.adamw_kwargs(self.device.type))
        total = self.total_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: self.optim.lr_at(step, total) / self.optim.lr
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        wd = self.optim.weight_decay_at(self.global_step, self.total_steps)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                if group.get("scheduled_wd"):
                    group["weight_decay"] = wd

    def on_after_backward(self) -> None:
        # DDP all-reduces a gradient bucket only when all its parameters have gradients: a parameter the
        # loss never touches leaves its bucket unsynchronised. Name them on the first step.
        if self.global_step == 0 and self.trainer.world_size > 1:
            unused = [n for n, p in self.named_parameters() if p.requires_grad and p.grad is None]
            if unused and not getattr(self.trainer.strategy.model, "find_unused_parameters", False):  # DDP's
                raise RuntimeError(
                    f"parameters without a gradient under DDP: {', '.join(unused[:10])}; remove them from the "
                    "model or set trainer.strategy: ddp_find_unused_parameters_true"
                )

    def on_train_end(self) -> None:
        """The skipped steps, summed up; too many fail the fit (after the callbacks saved the last checkpoint)."""
        summary = self.guard.summary()
        if summary is not None:
            rank_zero_warn(summary)
        self.guard.check_skipped()

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.skip_step:  # AdamW leaves parameters without gradients untouched: no decay, no moments, no count
            optimizer.zero_grad(set_to_none=True)
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads or torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()):  # one fused op, one sync
            return
        bad = self.terms_with_nonfinite_gradient()
        message = (f"non-finite gradient at step {self.global_step} from term(s) {', '.join(bad) or '(none alone)'}"
                   " (loss terms: " + ", ".join(f"{k}={v.item():.4g}" for k, v in self.last_step.terms.items()) + ")")
        if self.guard.config.on_nonfinite == "stop":
            raise NonFiniteLossError(message + " (set model.init_args.guard.on_nonfinite: skip to skip such steps)")
        rank_zero_warn(f"skipping step {self.global_step}: {message}")
        self.guard.skipped += 1
        self.skip_step = True  # the gradients are all-reduced: every rank sees them non-finite and skips
        optimizer.zero_grad(set_to_none=True)  # AdamW leaves parameters without gradients untouched

    def terms_with_nonfinite_gradient(self) -> list[str]:
        """The terms whose own gradient is non-finite, from the step recomputed on the same clip and masks
        (the backward freed the step's graph). Runs only on a bad step, on every rank (the gradients are
        all-reduced, so all ranks see it; the terms may hold collectives)."""
        with torch.enable_grad(), self.trainer.precision_plugin.forward_context():
            terms = self.loss_terms(self.forward_step(self.last_step.clip, self.global_step))
        params = [p for p in self.parameters() if p.requires_grad]
        bad = []
        for name, term in terms.items():
            if term.requires_grad:
                grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
                if not all(torch.isfinite(g).all() for g in grads if g is not None):
                    bad.append(name)
        return bad

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)  # runs training_step, backward, on_before_optimizer_step, AdamW
        if self.target_encoder is not None and not self.skip_step:
            self.update_target(self._momentum())

    def _momentum(self) -> float:
        return ema_momentum_at(self.global_step, self.total_steps, self.ema_momentum, self.ema_final_momentum)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * online, over all encoder parameters."""
        target = list(self.target_encoder.parameters())
        online = list(self.encoder.parameters())
        torch._foreach_lerp_(target, online, 1.0 - momentum)

    # ----- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Enough to rebuild the evaluation encoder without the run's config, and to know which
        # encoder trained (no-EMA runs must be evaluated on the online encoder, never the initial copy).
        checkpoint["jepa_lit"] = {
            "encoder_config": dict(self.encoder.config),
            "eval_encoder": "target_encoder" if self.target_encoder is not None else "encoder",
            "target_mode": self.target_mode,
            "behaviour_version": jepa_lit.BEHAVIOUR_VERSION,
            "data": self.data_settings(),
            "run": self.run_settings(),
        }
        checkpoint["jepa_lit_guard"] = self.guard.state_dict()

    def data_settings(self) -> dict[str, Any]:
        """The clip settings the run trains on (num_frames, crop_size), from its DataModule when it has one."""
        trainer = getattr(self, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        return {k: getattr(datamodule, k) for k in DATA_SETTINGS if isinstance(getattr(datamodule, k, None), int)}

    def run_settings(self) -> dict[str, Any]:
        """What defines the run besides the encoder and the clips: the objectives (class and weight), the
        target, the mask tokens and sampler, the predictor. Recorded in checkpoints; a resume must keep them."""
        objectives = [f"{type(o).__name__}(weight={getattr(o, 'weight', None)!r})" for o in self.objectives]
        return {"objectives": objectives, "target_encoder": self.target_mode, "mask_tokens": self.mask_token_mode,
                "mask_sampler": type(self.mask_sampler).__name__, "predictor_width": self.hparams.predictor_width,
                "predictor_depth": self.hparams.predictor_depth, "predictor_heads": self.hparams.predictor_heads}

    def check_resume_settings(self, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit with settings that change what the checkpoint is (clip length, crop, encoder
        config, objectives, target, predictor) is refused, naming each key that differs (old -> new)."""
        recorded = checkpoint.get("jepa_lit", {})
        old = {f"model.encoder.{k}": v for k, v in recorded.get("encoder_config", {}).items()}
        old |= {f"data.{k}": v for k, v in recorded.get("data", {}).items()}
        old |= {f"model.{k}": v for k, v in recorded.get("run", {}).items()}  # checkpoints before 0.x: none
        new = {f"model.encoder.{k}": v for k, v in dict(self.encoder.config).items()}
        new |= {f"data.{k}": v for k, v in self.data_settings().items()}
        new |= {f"model.{k}": v for k, v in self.run_settings().items()}
        changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(old) if k in new and old[k] != new[k]]
        if changed:
            raise CheckpointError("resuming a checkpoint with settings that differ from the ones it was trained "
                                  "with: " + "; ".join(changed) + ". Resume with the run's own config, or start a "
                                  "new run (no --ckpt_path) for the new settings. To fine-tune from its weights, "
                                  "start a new run with --model.init_args.init_from CKPT instead.")

    def check_checkpoint_matches(self, checkpoint: dict[str, Any]) -> None:
        """Any command: the checkpoint must be a jepa-lit one whose weights are this model's, named by part
        (Lightning's Missing / Unexpected keys traceback otherwise)."""
        trainer = getattr(self, "_trainer", None)
        path = getattr(trainer, "ckpt_path", None) or "the checkpoint"
        if not isinstance(checkpoint.get("jepa_lit"), dict):
            raise CheckpointError(f"{path}: not a jepa-lit pretraining checkpoint (no 'jepa_lit' entry, written by "
                                  "JEPAModule.on_save_checkpoint); expected RUN/checkpoints/last.ckpt of a jepa-lit "
                                  "fit")
        if "state_dict" not in checkpoint:  # hooks called with a partial dict (tests, tools): nothing to compare
            return
        state, own = checkpoint["state_dict"], self.state_dict()
        have, want = set(state), set(own)
        parts = lambda keys: sorted({".".join(k.split(".")[:2]) if k.startswith("objectives.") else k.split(".")[0]
                                     for k in keys})  # noqa: E731
        extra, missing = parts(have - want), parts(want - have)
        resized = parts(k for k in have & want if getattr(state[k], "shape", None) != own[k].shape)
        if extra or missing or resized:
            recorded = checkpoint["jepa_lit"].get("run", {})
            trained = (f" (it was trained with objectives {recorded.get('objectives')}, target_encoder "
                       f"{recorded.get('target_encoder')})" if recorded else "")
            raise CheckpointError(
                f"{path} does not fit this model{trained}: "
                + "; ".join(filter(None, [f"it has weights this model lacks: {', '.join(extra)}" if extra else "",
                                          f"it lacks weights this model has: {', '.join(missing)}" if missing else "",
                                          f"weights of other shapes: {', '.join(resized)}" if resized else ""]))
                + ". Use the run's own config (RUN/config.yaml) with this checkpoint; to start a new run from its "
                "weights, use --model.init_args.init_from CKPT (no --ckpt_path).")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.state.fn == "fit":
            self.check_resume_settings(checkpoint)
        if trainer is not None:  # before Lightning loads the weights: a wrong checkpoint named, not a key list
            self.check_checkpoint_matches(checkpoint)
        self.guard.load_state_dict(checkpoint.get("jepa_lit_guard", {}))
        written_by = checkpoint.get("jepa_lit", {}).get("behaviour_version", 1)
        if written_by != jepa_lit.BEHAVIOUR_VERSION:
            rank_zero_warn(f"this checkpoint was written by jepa-lit behaviour version {written_by}, this is "
                           f"{jepa_lit.BEHAVIOUR_VERSION}: a resumed run mixes both (see jepa_lit.BEHAVIOUR_VERSION)")

    def configure_model(self) -> None:
        if self.compile_model:  # in place: parameter names and checkpoints stay the same
            # The per-term gradient norms and the non-finite gradient diagnosis take extra gradients with
            # retain_graph=True, which compiled backwards refuse while they donate their saved buffers.
            keep_compiled_backward_buffers()
            for part in (self.encoder, self.predictor, self.target_encoder):
                if part is not None:
                    # dynamic: token counts change with every mask draw; one graph serves them all.
                    part.compile(dynamic=True)

    # ----- setup -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # Each DDP rank draws its own masks, reproducibly.
        self.mask_sampler.set_rank(self.global_rank, self.trainer.world_size)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None:
            self.check_data_fits(datamodule)

    def check_data_fits(self, datamodule) -> None:
        """Fail before training, naming the keys, when the clips cannot be cut into the encoder's tubelet x
        patch x patch pieces (the CLI calls this once before launching the other ranks; setup again)."""
        frames, crop = getattr(datamodule, "num_frames", None), getattr(datamodule, "crop_size", None)
        tubelet, patch = self.encoder.tubelet_size, self.encoder.patch_size
        images = frames == 1 and getattr(self.encoder, "patch_embed_img", None) is not None  # tubelet 1
        problems = []
        if isinstance(frames, int) and frames % tubelet and not images:
            problems.append(f"data.init_args.num_frames={frames} is not a multiple of "
                            f"model.init_args.encoder.init_args.tubelet_size={tubelet}")
        if isinstance(crop, int) and crop % patch:
            problems.append(f"data.init_args.crop_size={crop} is not a multiple of "
                            f"model.init_args.encoder.init_args.patch_size={patch}")
        if problems:
            raise ConfigError("; ".join(problems) + " (the encoder cuts clips into tubelet x patch x patch pieces)")

    def _check_objective_names(self) -> None:
        names = [objective.name for objective in self.objectives]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"objectives {sorted(duplicated)} are listed twice; each name must be unique")


def last_step_of(pl_module: L.LightningModule, reader: str) -> Optional[StepRecord]:
    """The record of ``pl_module``'s latest training step (None before its first), for the callback
    ``reader``; a clear error when the module is not a JEPAModule, which is the only one that leaves one."""
    if not isinstance(pl_module, JEPAModule):
        raise TypeError(f"{reader} reads a JEPAModule's training step (jepa_lit.module.JEPAModule.last_step); "
                        f"the trainer's module is a {type(pl_module).__module__}.{type(pl_module).__name__}")
    return pl_module.last_step
