"""Griffe extension for the docs build: read xpnn's docstrings as mkdocstrings renders them.

xpnn's docstrings are Google style with a few reStructuredText habits that
mkdocstrings (Markdown) would print literally. This extension, loaded by the
``mkdocstrings`` plugin (see ``mkdocs.yml``), rewrites them while the docs are
built; the source files are not touched:

* Sphinx roles (``:func:`set_backend```, ``:class:`~xpnn.Backend```,
  ``:data:`FILES```) become code that links to the object's entry in the API
  reference when it has one (resolved from the docstring's scope, like Python
  names), and stay plain code otherwise (NumPy, the standard library, ...).
* Literal blocks introduced by ``::`` become fenced code blocks (Python when
  the block parses as Python, plain text otherwise).
* Module constants documented by ``#:`` comments above them (the Sphinx
  convention, which griffe does not read) get those comments as docstrings.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|meth|class|data|attr|mod|exc|obj|const):`(~?)([\w.]+)(\(\))?`")
_LITERAL = re.compile(r"^(?P<indent>\s*)(?P<text>.*?)::\s*$")
# Google section titles: a line "Example:" alone would start a section.
_SECTIONS = {"example", "examples", "note", "notes", "warning", "warnings"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _lookup(scope: Any, dotted: str) -> Any:
    """The object ``dotted`` names inside ``scope`` (through aliases), or None."""
    current = scope
    for part in dotted.split("."):
        try:
            members = current.all_members if current.is_class else current.members
        except Exception:  # an alias to an external package, a failed resolution
            return None
        if part not in members:
            return None
        current = members[part]
        if current.is_alias:
            try:
                current = current.final_target
            except Exception:  # an import of something outside the package
                return None
    return current


def _resolve(obj: Any, name: str, root: Any) -> str:
    """The path of the object ``name`` refers to in ``obj``'s docstring (best effort)."""
    if name.startswith(root.name + "."):
        found = _lookup(root, name[len(root.name) + 1 :])
        if found is not None:
            return found.path
    scope = obj if (obj.is_module or obj.is_class) else obj.parent
    while scope is not None:
        found = _lookup(scope, name)
        if found is not None:
            return found.path
        scope = scope.parent
    return name


def _roles(text: str, obj: Any, root: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        _, short, name, call = match.groups()
        title = (name.rsplit(".", 1)[-1] if short else name) + (call or "")
        identifier = _resolve(obj, name, root)
        # An optional autoref links when the target is rendered and is plain
        # code (no warning) when it is not, e.g. numpy.random.default_rng.
        return f'<autoref identifier="{identifier}" optional>`{title}`</autoref>'

    return _ROLE.sub(replace, text)


def _literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _LITERAL.match(lines[i])
        if match is None or lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines) or _indent(lines[j]) <= len(indent):
            out.append(lines[i])
            i += 1
            continue
        end = j
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > len(indent)):
            end += 1
        while not lines[end - 1].strip():
            end -= 1
        code = textwrap.dedent("\n".join(lines[j:end]))
        try:
            ast.parse(code)
            lang = "python"
        except SyntaxError:
            lang = "text"
        head = match["text"].rstrip()
        if head.lower() in _SECTIONS:
            out += [f"{indent}**{head}**", ""]
        elif head:
            out += [f"{indent}{head}:", ""]
        out.append(f"{indent}```{lang}")
        out += [f"{indent}{line}" if line else "" for line in code.splitlines()]
        out.append(f"{indent}```")
        i = end
    return "\n".join(out)


def _comment_docstring(attr: Any) -> str | None:
    """The ``#:`` comment lines right above an attribute, joined, or None."""
    try:
        lines = attr.parent.lines if attr.parent.is_module else attr.module.lines
    except Exception:
        return None
    if not lines or attr.lineno is None:
        return None
    found = []
    k = attr.lineno - 2  # the line above, 0-based
    while k >= 0 and lines[k].strip().startswith("#:"):
        found.append(lines[k].strip()[2:].strip())
        k -= 1
    return "\n".join(reversed(found)) or None


def _walk(obj: Any, seen: set[str]) -> Any:
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in list(obj.members.values()):
        if not member.is_alias:
            yield from _walk(member, seen)


class RstDocstrings(griffe.Extension):
    """Rewrite reST roles, literal blocks and ``#:`` comments for Markdown rendering."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg, set()):
            if obj.is_attribute and obj.docstring is None:
                text = _comment_docstring(obj)
                if text:
                    obj.docstring = griffe.Docstring(
                        text, lineno=obj.lineno, endlineno=obj.lineno, parent=obj
                    )
            if obj.docstring is not None:
                value = _literal_blocks(obj.docstring.value)
                obj.docstring.value = _roles(value, obj, pkg)
