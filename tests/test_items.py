"""Totara item keys: component name followed by the numeric id, nothing else."""


from runtime.items import parse_item_key


def test_item_keys_with_trailing_characters_are_not_items():
    assert parse_item_key("engage_article12") == (2, 12)
    for bad in ("engage_article12\n", "engage_article", "engage_article-1", "foo12",
                "engage_article99999999999"):
        assert parse_item_key(bad) is None, bad
