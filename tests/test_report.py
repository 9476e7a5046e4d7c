from securepipe.report import format_table


def test_format_table_aligns_and_renders_values() -> None:
    text = format_table([{"a": 1.234, "b": None}, {"a": 10, "b": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["1.23", "-"]
    assert lines[3].split() == ["10", "x"]
    assert format_table([], ["a"]).splitlines()[0] == "a"


def test_a_table_renders_as_html_with_long_cells_cut_and_escaped() -> None:
    import html.parser

    long = "evidence " * 40 + "<script>"
    table = format_table([{"check": "x", "evidence": long}])
    assert str(table).splitlines()[0].split() == ["check", "evidence"]  # still plain text
    page = table._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<details><summary>" in page  # the full text opens on demand

    class Cells(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.tags.append(tag)

    parser = Cells()
    parser.feed(page)
    assert parser.tags.count("th") == 2 and parser.tags.count("td") == 2
