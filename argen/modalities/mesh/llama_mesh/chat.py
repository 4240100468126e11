"""A model's own chat template, read from its folder and rendered as transformers renders it.

Where the template lives: ``chat_template`` in tokenizer_config.json (a string, or a list of
``{"name", "template"}`` of which "default" is used), or a ``chat_template.jinja`` file beside it
(transformers 5 saves it so). Rendering follows transformers' ``utils/chat_template_utils.py``:
a sandboxed Jinja environment with ``trim_blocks``, ``lstrip_blocks`` and loop controls, a
``tojson`` filter, the globals ``raise_exception`` and ``strftime_now``, and the tokenizer's
special tokens (``bos_token``, ``eos_token``, ...) as variables.

LLaMA-Mesh (nv-tlabs/LLaMA-Mesh ``app.py``) builds its prompt with
``tokenizer.apply_chat_template(conversation)`` on ``[{"role": "user", "content": message}]``,
with the template of its Hugging Face repo's tokenizer_config.json (Llama 3.1 Instruct's).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from argen.checkpoints.argen_format import read_json
from argen.errors import ArgenError


def read_template(folder: Path) -> tuple[str, dict[str, str]]:
    """The chat template and the special tokens' texts of a model folder."""
    folder = Path(folder)
    cfg = read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    template = cfg.get("chat_template")
    if isinstance(template, list):
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None)
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if not isinstance(template, str) or not template:
        raise ArgenError(f"{folder} has no chat template", hint="the model folder needs its tokenizer_config.json")
    specials = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = cfg.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            specials[key] = value
    return template, specials


def render(template: str, messages: list[dict[str, Any]], specials: dict[str, str] | None = None,
           add_generation_prompt: bool = True, **extra: Any) -> str:
    """The prompt text for ``messages``."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(messages=messages, tools=None, documents=None,
                                                add_generation_prompt=add_generation_prompt,
                                                **(specials or {}), **extra)
    except jinja2.exceptions.TemplateError as e:
        raise ArgenError(f"the model's chat template failed: {e}", hint="check tokenizer_config.json") from None
