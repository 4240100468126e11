"""One trainer for every modality, driven by a recipe (see :mod:`argen.lab.recipes`).

A task supplies the model config, training batches and an evaluation; the loop (AdamW, warmup
plus cosine schedule, bf16 autocast, gradient clipping, an optional moving average of the weights,
best-checkpoint keeping) is shared.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from argen.io.atomic import write_text_atomic
from argen.lab.recipes import TrainRecipe
from argen.lab.tasks import make_task


def lr_at(step: int, t) -> float:
    """Linear warmup to ``t.lr``, then cosine decay to ``t.min_lr`` at ``t.max_steps``."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def make_optimizer(model: nn.Module, t) -> torch.optim.Optimizer:
    # weight decay on matrices and kernels only; norms, biases, embeddings and codebooks stay undecayed
    def decayed(name: str, p: torch.Tensor) -> bool:
        return p.dim() >= 2 and "embed" not in name and "codebook" not in name

    decay = [p for n, p in model.named_parameters() if decayed(n, p)]
    rest = [p for n, p in model.named_parameters() if not decayed(n, p)]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


def attention_kernel(choice: str):
    """A context for one training step: SDPA's own choice, or its composite "math" kernel."""
    if choice == "math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def init_state(name_or_path: str, model: nn.Module, adapt=None) -> dict[str, torch.Tensor]:
    """``train.init``: the weights of a trained model, in ``model``'s dtypes; a tensor that does
    not fit the recipe's model is a one-line error naming it. ``adapt(state, model)``, a task's
    ``adapt_init``, may first reshape what the task knows how to (a vocabulary grown by a token)."""
    from argen.checkpoints import resolve as weights
    from argen.checkpoints.argen_format import check_state, read_safetensors

    ref = weights.resolve(name_or_path)  # a registered name is checked against its sha256
    state = read_safetensors(ref.path / "model.safetensors")
    own = model.state_dict()
    if adapt is not None:
        state = adapt(state, model)
    check_state(state, {k: v.shape for k, v in own.items()}, f"train.init {name_or_path}", "recipe's model",
                hint="train.init must be trained with this recipe's model: section")
    return {k: state[k].to(v.dtype) for k, v in own.items()}


class WeightAverage:
    """An exponential moving average of a model's floating-point weights (``train.ema``), kept in
    float32. Update ``n`` uses decay ``min(decay, (1 + n) / (10 + n))``, so the first updates are
    not held near the random initialisation (the warm-up of TensorFlow's ExponentialMovingAverage)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.float(), 1 - d)

    def state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged weights, in the model's dtypes."""
        return {k: self.shadow[k].to(v.dtype) if k in self.shadow else v.clone() for k, v in model.state_dict().items()}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(recipe: TrainRecipe, out: Path, recipe_path: str = "", quiet: bool = False) -> dict:
    """Train the recipe's model, keep the best validation checkpoint (or the last, with
    ``train.keep: last``), write it to ``out``."""
    t = recipe.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    task = make_task(recipe)
    model = task.build_model(recipe.model)
    if t.init:
        model.load_state_dict(init_state(t.init, model, getattr(task, "adapt_init", None)))
    opt = make_optimizer(model, t)
    dtype = getattr(torch, t.dtype)
    ema = WeightAverage(model, t.ema) if t.ema else None
    gen = torch.Generator().manual_seed(t.seed)
    history, best, best_state, best_step = [], float("inf"), None, 0
    start = time.time()
    step = 0
    if not quiet:
        log(f"training {recipe.name}: {num_params(model) / 1e6:.2f}M parameters, {t.max_steps} steps")
    for step in range(t.max_steps + 1):
        out_of_time = bool(t.max_minutes) and time.time() - start > t.max_minutes * 60
        last = step == t.max_steps or out_of_time  # the last step is always evaluated
        if step % t.eval_every == 0 or last:
            model.eval()
            with torch.no_grad():
                val = raw_val = task.quick_val_loss(model, t.eval_batches, t.batch_size, dtype)
                if ema:  # the averaged weights are the ones scored and kept
                    raw_state = copy.deepcopy(model.state_dict())
                    model.load_state_dict(ema.state(model))
                    val = task.quick_val_loss(model, t.eval_batches, t.batch_size, dtype)
            minutes = (time.time() - start) / 60
            history.append({"step": step, "val_loss": round(val, 4), **({"raw_val_loss": round(raw_val, 4)} if ema else {}),
                            "minutes": round(minutes, 2)})
            if not quiet:
                raw_note = f" (raw weights {raw_val:.4f})" if ema else ""
                log(f"step {step:5d}  val {val:.4f}{raw_note}  lr {lr_at(step, t):.2e}  {minutes:.1f} min")
            if val < best or (last and t.keep == "last"):
                best, best_step = val, step
                best_state = copy.deepcopy(model.state_dict())
            if ema:
                model.load_state_dict(raw_state)
            model.train()
        if last:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, t)
        batch = task.batch(t.batch_size, gen)
        with attention_kernel(t.attention), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = task.loss(model, batch)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ema:
            ema.update(model)
    minutes = (time.time() - start) / 60
    store = getattr(torch, t.save_dtype)  # score the weights as they will be stored
    model.load_state_dict({k: v.to(store).to(v.dtype) if v.is_floating_point() else v for k, v in best_state.items()})
    model.eval()
    metrics = task.final_metrics(model)
    summary = {"recipe": recipe_path, **({"init": t.init} if t.init else {}), **({"ema": t.ema} if t.ema else {}),
               "steps": step, "best_step": best_step,
               "minutes": round(minutes, 1), "threads": torch.get_num_threads(), "params": num_params(model),
               "best_val_loss": round(best, 4), **metrics}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task.save(out, model, summary)
    write_text_atomic(out / "train_log.json", json.dumps({"summary": summary, "history": history}, indent=1) + "\n")
    write_text_atomic(out / "README.md", model_card(recipe, summary, recipe_path, task.card(summary)))
    return summary


def ema_note(s: dict) -> str:
    return f", the moving average of the weights (decay {s['ema']})" if s.get("ema") else ""


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_card(recipe: TrainRecipe, s: dict, recipe_path: str, task_lines: str) -> str:
    threads = f"{s['threads']} CPU thread{'s' if s['threads'] != 1 else ''}"
    kept = "best" if recipe.train.keep == "best" else "last"
    return f"""# {recipe.name}

{recipe.description.strip()}

- Architecture: {s['params'] / 1e6:.2f}M parameters; config in config.json.
- Trained by: `argen train {recipe.task} --recipe {recipe_path}` ({s['steps']} steps{', from ' + s['init'] if s.get('init') else ''},
  {s['minutes']} minutes on {threads}; {kept} checkpoint at step {s['best_step']}{ema_note(s)}).
{task_lines.rstrip()}
- Licence: weights trained by the argen authors; data licence as stated in the data's README.
"""
