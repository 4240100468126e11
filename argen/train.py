"""One trainer for every modality, driven by a recipe (see :mod:`argen.recipes`).

A task supplies the model config, training batches and an evaluation; the loop (AdamW, warmup
plus cosine schedule, bf16 autocast, gradient clipping, best-checkpoint keeping) is shared.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from argen.data.text import TokenStream, read_corpus, split_corpus
from argen.evaluate import stream_loss
from argen.io.atomic import write_text_atomic
from argen.models.checkpoint import save_model_dir
from argen.models.config import TransformerConfig
from argen.models.text_tokenizer import CharTokenizer
from argen.models.transformer import Transformer
from argen.recipes import TrainRecipe


class TextTask:
    """Character-level language modelling on a text corpus (nanoGPT's split)."""

    modality = "text"

    def __init__(self, recipe: TrainRecipe) -> None:
        text = read_corpus(recipe.data.path)
        # the vocabulary covers the whole corpus, as nanoGPT's prepare.py does
        self.tokenizer = CharTokenizer.from_text(text)
        train_text, val_text = split_corpus(text, recipe.data.val_fraction)
        self.train = TokenStream(self.tokenizer.encode(train_text))
        self.val = TokenStream(self.tokenizer.encode(val_text))
        self.seq_len = recipe.train.seq_len

    def model_config(self, overrides: dict) -> TransformerConfig:
        return TransformerConfig(vocab_size=self.tokenizer.vocab_size, max_seq_len=self.seq_len, **overrides)

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train.batch(batch_size, self.seq_len, gen)

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        gen = torch.Generator().manual_seed(0)  # the same windows at every evaluation
        losses = []
        for _ in range(batches):
            x, y = self.val.batch(batch_size, self.seq_len, gen)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                logits = model(x)
            losses.append(F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).item())
        return sum(losses) / len(losses)

    def final_metrics(self, model: Transformer) -> dict:
        return {"val_loss": round(stream_loss(model, self.val, self.seq_len), 4),
                "val_tokens": len(self.val), "train_tokens": len(self.train)}

    def save_assets(self, out: Path) -> dict:
        self.tokenizer.save(out / "tokenizer.json")
        return {"tokenizer": "tokenizer.json"}


TASKS: dict[str, Callable[[TrainRecipe], TextTask]] = {"text": TextTask}


def lr_at(step: int, t) -> float:
    """Linear warmup to ``t.lr``, then cosine decay to ``t.min_lr`` at ``t.max_steps``."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def make_optimizer(model: Transformer, t) -> torch.optim.Optimizer:
    # weight decay on matrices only; norms, biases and embeddings' rows stay undecayed
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(recipe: TrainRecipe, out: Path, recipe_path: str = "", quiet: bool = False) -> dict:
    """Train the recipe's model, keep the best validation checkpoint, write it to ``out``."""
    t = recipe.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    task = TASKS[recipe.task](recipe)
    cfg = task.model_config(recipe.model)
    model = Transformer(cfg)
    opt = make_optimizer(model, t)
    dtype = getattr(torch, t.dtype)
    gen = torch.Generator().manual_seed(t.seed)
    history, best, best_state, best_step = [], float("inf"), None, 0
    start = time.time()
    step = 0
    if not quiet:
        log(f"training {recipe.name}: {model.num_params() / 1e6:.2f}M parameters, {t.max_steps} steps")
    for step in range(t.max_steps + 1):
        if step % t.eval_every == 0 or step == t.max_steps:
            model.eval()
            with torch.no_grad():
                val = task.quick_val_loss(model, t.eval_batches, t.batch_size, dtype)
            model.train()
            minutes = (time.time() - start) / 60
            history.append({"step": step, "val_loss": round(val, 4), "minutes": round(minutes, 2)})
            if not quiet:
                log(f"step {step:5d}  val {val:.4f}  lr {lr_at(step, t):.2e}  {minutes:.1f} min")
            if val < best:
                best, best_step = val, step
                best_state = copy.deepcopy(model.state_dict())
        if step == t.max_steps or (t.max_minutes and time.time() - start > t.max_minutes * 60):
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, t)
        x, y = task.batch(t.batch_size, gen)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    minutes = (time.time() - start) / 60
    model.load_state_dict(best_state)
    model.eval()
    metrics = task.final_metrics(model)
    summary = {"recipe": recipe_path, "steps": step, "best_step": best_step, "minutes": round(minutes, 1),
               "threads": torch.get_num_threads(), "params": model.num_params(), **metrics}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = task.save_assets(out)
    save_model_dir(out, model, task.modality, {"name": recipe.name, **extra, "training": summary})
    write_text_atomic(out / "train_log.json", json.dumps({"summary": summary, "history": history}, indent=1) + "\n")
    write_text_atomic(out / "README.md", model_card(recipe, summary, recipe_path))
    return summary


def model_card(recipe: TrainRecipe, s: dict, recipe_path: str) -> str:
    return f"""# {recipe.name}

{recipe.description.strip()}

- Architecture: argen transformer, {s['params'] / 1e6:.2f}M parameters; config in config.json.
- Trained by: `argen train {recipe.task} --recipe {recipe_path}` ({s['steps']} steps,
  {s['minutes']} minutes on {s['threads']} CPU threads; best checkpoint at step {s['best_step']}).
- Data: `{recipe.data.path}`, first {100 - round(recipe.data.val_fraction * 100)}% of characters for training
  ({s['train_tokens']:,} tokens), last {round(recipe.data.val_fraction * 100)}% for validation ({s['val_tokens']:,} tokens).
- Score: validation loss **{s['val_loss']:.4f}** nats/token over every token of the validation split
  (`argen eval text --model {recipe.name}` reproduces it).
- Licence: weights trained by the argen authors; data licence as stated in the data's README.
"""
