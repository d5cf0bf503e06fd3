"""User YAML (recipes, preprocess.yaml) read with a size cap and without aliases.

A YAML alias makes one node stand for another; nested aliases ("billion laughs") turn a kilobyte of text into
an object graph that takes gigabytes to print or walk. Our files never need aliases, so any alias is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_YAML_BYTES = 1 << 20


def read_user_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """Parse ``path`` with ``yaml.SafeLoader``, refusing aliases and files over 1 MiB.

    Args:
        path: the YAML file.
        error: the exception class to raise (``RecipeError``, ``CalibrationError``...), with one sentence.
        what: what the file is, for the message ("recipe", "preprocessing spec").

    Returns:
        The parsed document.

    Example:
        >>> read_user_yaml(Path("recipe.yaml"), ValueError, "recipe")  # doctest: +SKIP
        {'stages': [...]}
    """
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise error(f"{path}: the {what} uses a YAML alias (*{event.anchor}); aliases are not allowed. "
                            "Write the values out.")
            return super().compose_node(parent, index)

    try:
        size = path.stat().st_size
        if not path.is_file():
            raise error(f"{path}: not a regular file. Pass the {what} as a YAML file.")
        if size > MAX_YAML_BYTES:
            raise error(f"{path}: {size} bytes is too large for a {what} (at most {MAX_YAML_BYTES}).")
        text = path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} ({exc}).") from exc
    try:
        return yaml.load(text, Loader=NoAliasLoader)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not a readable YAML {what} ({str(exc).splitlines()[0]}). Fix the {what}.") from exc
