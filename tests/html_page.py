"""Reading an HTML page as a clinician sees it (the rule pages, GET /guidance...)."""

from __future__ import annotations

from html.parser import HTMLParser

LINK_LABEL = "Why this recommendation"


class Page(HTMLParser):
    """What a reader sees: the text (not attributes, not the style sheet), the hrefs, the tags."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.text, self.hrefs, self.tags, self._skip, self._h1, self.h1 = [], [], [], 0, False, ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]
        self._skip += tag == "style"
        self._h1 = tag == "h1"

    def handle_endtag(self, tag):
        self._skip -= tag == "style"
        self._h1 = False if tag == "h1" else self._h1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
        if self._h1:
            self.h1 += data

    @property
    def visible(self) -> str:
        return " ".join(self.text)


def page(client, path: str) -> Page:
    """GET `path`: 200, HTML, parsed."""
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return Page(response.get_data(as_text=True))
