"""YAML that cannot hang or exhaust a machine: recipes are parsed with ``yaml.SafeLoader`` within bounds on
their length, the nodes their aliases add ("billion laughs") and their nesting, each refusal a RecipeError."""

from __future__ import annotations

from typing import Any

import yaml

from orbitcube.pipeline.errors import RecipeError

__all__ = ["MAX_ALIAS_NODES", "MAX_RECIPE_CHARS", "alias_nodes", "safe_yaml"]

#: largest recipe text accepted (characters)
MAX_RECIPE_CHARS = 2_000_000
#: most YAML nodes that aliases (``*name``) may add when they are replaced by their anchors' content
MAX_ALIAS_NODES = 10_000


def alias_nodes(root: yaml.Node) -> int:
    """How many nodes expanding the aliases of the YAML graph ``root`` adds (shared nodes counted each time they
    are used, minus the distinct nodes), computed without expanding: each node's size once, children first."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in size:
            continue
        children = (
            [c for pair in node.value for c in pair]
            if isinstance(node, yaml.MappingNode)
            else (node.value if isinstance(node, yaml.SequenceNode) else [])
        )
        if ready:
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in children)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)] - len(size)


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` of a recipe, refusing documents that are too long, nest too deep or expand (through
    anchors and aliases, "billion laughs") by more than :data:`MAX_ALIAS_NODES` nodes."""
    if len(text) > MAX_RECIPE_CHARS:
        raise RecipeError(
            f"recipe {where} is {len(text)} characters long; the limit is {MAX_RECIPE_CHARS}: keep large AOIs "
            "in a GeoJSON file and simplify them"
        )
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        n = alias_nodes(root)
        if n > MAX_ALIAS_NODES:
            raise RecipeError(
                f"recipe {where} expands by {n} values through YAML anchors and aliases (limit {MAX_ALIAS_NODES}) "
                "(&name / *name); write the values out, or use fewer aliases"
            )
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        why = " ".join(str(exc).split())  # one line: YAML's messages span several
        raise RecipeError(f"recipe {where} is not valid YAML: {why}") from exc
    except RecursionError:
        raise RecipeError(f"recipe {where} nests too deeply; flatten its lists and mappings") from None
    finally:
        loader.dispose()
