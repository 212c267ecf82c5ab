"""Just enough of a DOM to read a page the way ``pgevents.js`` does: regions, rows, ids.

Standard library only (``html.parser``): elements with their attributes and children, text,
and a serializer for an element's inner HTML. Not a browser: no scripts, no error recovery
beyond closing what a page leaves open.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    def elements(self) -> Iterator[Element]:
        """Every element below this one, in document order."""
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.elements()

    def child_elements(self) -> list[Element]:
        return [c for c in self.children if isinstance(c, Element)]

    def find_id(self, element_id: str) -> Element | None:
        return next((e for e in self.elements() if e.attrs.get("id") == element_id), None)

    def inner_html(self) -> str:
        return "".join(escape(c, quote=False) if isinstance(c, str) else c.outer_html() for c in self.children)

    def outer_html(self) -> str:
        attrs = "".join(f' {k}="{escape(v, quote=True)}"' for k, v in self.attrs.items())
        if self.tag in VOID:
            return f"<{self.tag}{attrs}>"
        return f"<{self.tag}{attrs}>{self.inner_html()}</{self.tag}>"

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):  # close up to the matching element
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Element:
    """The document (or fragment) as a tree under a ``#document`` element."""
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.root
