"""A prompt in the policy's chat template: what training and evaluation both sample from."""

from __future__ import annotations

from typing import Any

from darling.tasks.prompts import PromptRow


def chat_prompt(tokenizer: Any, prompt: str | PromptRow, system_prompt: str | None = None) -> str:
    """The prompt (a text, or a row whose chat messages are the conversation) in the tokenizer's
    chat template, ending where the assistant starts. ``system_prompt`` is put first unless the
    row's messages bring their own system message."""
    messages = prompt.chat if isinstance(prompt, PromptRow) else [
        {"role": "user", "content": prompt}]
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
