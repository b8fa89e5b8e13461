"""A DMN file parsed safely (defusedxml: no DTD, no entities, no external references) with every element's line,
its DMN version read from the namespace, and the errors that name file, line, element and id."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..errors import KamError, UnsupportedFeature

MAX_BYTES = 16 * 1024 * 1024  # a decision model is written by people; anything bigger is a mistake or an attack

# DMN model namespaces by version (DMN 1.5 §6.3 / Annex: the XML schema of each version).
NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": "1.1",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "1.2",
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "1.3",
    "https://www.omg.org/spec/DMN/20211108/MODEL/": "1.4",
    "https://www.omg.org/spec/DMN/20230324/MODEL/": "1.5",
}
# Expression languages that mean FEEL: each version's FEEL namespace, and the short names tools write.
FEEL = {
    "http://www.omg.org/spec/FEEL/20140401", "http://www.omg.org/spec/DMN/20180521/FEEL/",
    "https://www.omg.org/spec/DMN/20191111/FEEL/", "https://www.omg.org/spec/DMN/20211108/FEEL/",
    "https://www.omg.org/spec/DMN/20230324/FEEL/", "feel", "sfeel", "s-feel", "simple feel",
}


@dataclass(frozen=True)
class Where:
    """An element of a DMN file, for messages: `loan.dmn:42: <inputEntry id="UT_1">`."""

    file: str
    line: int | None
    element: str
    id: str | None = None

    def __str__(self) -> str:
        ident = f' id="{self.id}"' if self.id else ""
        return f"{self.file}:{self.line if self.line is not None else '?'}: <{self.element}{ident}>"


class DMNError(KamError):
    """A DMN file that cannot be read: not well-formed XML, entity declarations, a missing name, a broken
    reference. Says where."""

    def __init__(self, message: str, where: Where | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class DMNUnsupported(UnsupportedFeature):
    """A DMN feature outside what KAM Rules evaluates (a boxed context, a BKM, `for`, ...): refused, never
    answered wrongly. `.element`, `.id`, `.line` and `.file` say where it is."""

    def __init__(self, message: str, where: Where):
        self.where = where
        self.message = message
        self.element, self.id, self.line, self.file = where.element, where.id, where.line, where.file
        super().__init__(f"{where}: {message}")


class _Lines(TreeBuilder):
    """Builds the tree and notes the line each element starts on (expat knows it while the start tag is read)."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: DefusedXMLParser | None = None
        self.lines: dict[Element, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        element = super().start(tag, attrs)
        self.lines[element] = self.parser.parser.CurrentLineNumber
        return element


class Document:
    """The parsed file: its root `definitions`, the DMN version, and lookups that keep line numbers at hand."""

    def __init__(self, xml: str | bytes, file: str = "model.dmn"):
        self.file = file
        size = len(xml.encode("utf-8") if isinstance(xml, str) else xml)
        if size > MAX_BYTES:
            raise DMNError(f"the file is {size:,} bytes; a DMN model may have at most {MAX_BYTES:,}",
                           Where(file, None, "definitions"))
        builder = _Lines()
        parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        builder.parser = parser
        try:
            parser.feed(xml)
            self.root = parser.close()
        except DefusedXmlException as e:
            line = parser.parser.CurrentLineNumber
            raise DMNError(f"refused: the file declares a DTD or entities ({type(e).__name__}); entity expansion "
                           "('billion laughs') and external references are never read", Where(file, line, "!DOCTYPE")
                           ) from None
        except ParseError as e:
            line = e.position[0] if getattr(e, "position", None) else None
            raise DMNError(f"not well-formed XML: {e}", Where(file, line, "?")) from None
        self.lines = builder.lines
        tag = self.root.tag
        namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
        self.namespace = namespace
        if local != "definitions":
            raise DMNError(f"not a DMN model: the root element is <{self.root.tag}>, not <definitions>",
                           self.where(self.root))
        if namespace not in NAMESPACES:
            known = ", ".join(f"{v}: {k}" for k, v in NAMESPACES.items())
            raise DMNUnsupported(f"unknown DMN namespace {namespace or '(none)'!r}; KAM Rules reads DMN {known}",
                                 self.where(self.root))
        self.version = NAMESPACES[namespace]

    def tag(self, local: str) -> str:
        return f"{{{self.namespace}}}{local}"

    def local(self, element: Element) -> str:
        """The element's name without the namespace; names from other namespaces keep their `{ns}` prefix."""
        prefix = f"{{{self.namespace}}}"
        return element.tag[len(prefix):] if element.tag.startswith(prefix) else element.tag

    def children(self, element: Element, local: str) -> list[Element]:
        return element.findall(self.tag(local))

    def child(self, element: Element, local: str) -> Element | None:
        return element.find(self.tag(local))

    def text(self, element: Element | None, local: str = "text") -> str | None:
        """The text of a `<text>` (or other) child, or None when there is none."""
        if element is None:
            return None
        found = element.find(self.tag(local))
        return None if found is None else (found.text or "")

    def where(self, element: Element) -> Where:
        return Where(self.file, self.lines.get(element), self.local(element).split("}")[-1], element.get("id"))

    def unsupported(self, element: Element, message: str) -> DMNUnsupported:
        return DMNUnsupported(message, self.where(element))

    def error(self, element: Element, message: str) -> DMNError:
        return DMNError(message, self.where(element))
