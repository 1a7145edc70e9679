"""Write an AST back as query text, the inverse of `parse`.

Used to show analysts the query as the system understood it (precedence made
explicit with parentheses only where it matters) and to store a canonical form:
`parse(render(node)) == node` for every node the parser can produce.
"""

from __future__ import annotations

from listener.query.ast import And, Field, Near, Node, Not, Or, Phrase, Term

__all__ = ["render"]

_LEVEL = {Or: 0, And: 1, Near: 2, Not: 3}


def _level(node: Node) -> int:
    return _LEVEL.get(type(node), 4)


def _wrap(node: Node, above: int) -> str:
    text = render(node)
    return f"({text})" if _level(node) <= above else text


def _field_value(value: str) -> str:
    if value and not any(c.isspace() or c in '()"*' for c in value):
        return value
    return '"' + value.replace('"', "") + '"'


def render(node: Node) -> str:
    if isinstance(node, Term):
        return node.word + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + ("*" if node.prefix else "") + '"'
    if isinstance(node, Field):
        return f"{node.name}:{_field_value(node.value)}"
    if isinstance(node, Near):
        return f"{render(node.left)} NEAR/{node.distance} {render(node.right)}"
    if isinstance(node, Not):
        return "NOT " + _wrap(node.child, 2)
    op = " AND " if isinstance(node, And) else " OR "
    return op.join(_wrap(child, _level(node)) for child in node.children)
