"""The built-in prompt files (``*.jsonl``, read through ``darling.tasks.prompts``) and the
scripts that generate them: ``python -m darling.tasks.data.build_builtin`` and
``python -m darling.tasks.data.build_math`` (see ``README.md`` here)."""
