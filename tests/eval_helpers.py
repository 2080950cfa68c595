"""Quality functions for the evaluation fault tests (through `quality=callable`)."""


def constant_judge(prompts, completions, rows, **kwargs):
    """A judge that gives every response 3 on its 1..10 scale, right or wrong."""
    return [3.0] * len(completions)


def first_of_group_fails(prompts, completions, rows, **kwargs):
    """A judge whose call fails (None) for the first response of the first prompt only."""
    return [None if i == 0 else 5.0 for i in range(len(completions))]
