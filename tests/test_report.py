from securepipe.report import format_table


def test_format_table_aligns_and_renders_values() -> None:
    text = format_table([{"a": 1.234, "b": None}, {"a": 10, "b": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["1.23", "-"]
    assert lines[3].split() == ["10", "x"]
    assert format_table([], ["a"]).splitlines()[0] == "a"
