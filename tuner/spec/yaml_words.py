"""YAML 1.1's boolean words in a list: `choices: [no, yes]` and `activation: [on, off]`
load as [False, True], and a sweep searches two booleans its author never wrote.

In a mapping the key's type says what a value is (`shuffle: yes` is a boolean knob);
in a list nothing does, and there `yes`, `no`, `on` and `off` are more often words
than booleans. As with `017` (octal) the loader refuses them, naming the key path, and
asks for quotes or `true`/`false`: a guess either way would be silent. PyYAML reads
`y` and `n` as text already; `true` and `false` stay booleans.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tuner.spec.errors import KeyedYAMLError

_BOOL_TAG = "tag:yaml.org,2002:bool"
_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}


def refuse_boolean_words_in_lists(root: Node) -> None:
    """KeyedYAMLError for the first plain `yes`/`no`/`on`/`off` (any case) that is an
    item of a list, in the file's order; each node is visited once, so YAML's aliases
    cost nothing more here."""
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[Node, str]] = []
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                children.append((value_node, f"{path}.{name}" if path else name))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                where = f"{path}[{i}]"
                if (word := _boolean_word(item)) is not None:
                    raise KeyedYAMLError(
                        where,
                        f"YAML 1.1 reads {word} as {_WORDS[word.lower()]}, not as text: "
                        f"write '{word}' in quotes for the word, or "
                        f"{_WORDS[word.lower()]} for the boolean",
                    )
                children.append((item, where))
        stack.extend(reversed(children))  # popped in the file's order


def _boolean_word(node: Node) -> str | None:
    """The word, when `node` is an unquoted YAML 1.1 boolean other than true/false."""
    if not isinstance(node, ScalarNode) or node.tag != _BOOL_TAG or node.style is not None:
        return None
    text = str(node.value)
    return text if text.lower() in _WORDS else None
