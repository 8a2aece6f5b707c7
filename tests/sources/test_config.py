"""kbops.sources.config: a sources.toml mistake is one line naming the key, the file and the fix."""

from __future__ import annotations

import pytest

from kbops.cli import main
from kbops.errors import ConfigError
from kbops.sources.config import load_sources

GOOD = '[[sources]]\nname = "products"\ntype = "records"\nkind = "product"\npath = "products.csv"\n'


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('max_delete_share = "abc"', "max_delete_share"),
        ('fields = "sku"', "fields"),
        ("glob = 5", "glob"),
        ("fields = { price = 5 }", "fields"),
        ('max_document_bytes = "big"', "max_document_bytes"),
        ("max_delete_share = true", "max_delete_share"),
        ('max_price = "lots"', "max_price"),
        ("key = 1", "key"),
    ],
)
def test_wrong_type_is_a_config_error_naming_key_file_and_fix(tmp_path, line, key):
    config = tmp_path / "sources.toml"
    config.write_text(GOOD + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources(config)
    message = str(err.value)
    assert f"`{key}`" in message and str(config) in message and "'products'" in message
    assert "must be" in message and "\n" not in message


def test_name_that_is_not_a_string_is_named_as_such(tmp_path):
    config = tmp_path / "sources.toml"
    config.write_text(GOOD.replace('name = "products"', "name = 5"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources(config)
    assert "`name` = 5 must be a text" in str(err.value) and str(config) in str(err.value)


def test_sources_entry_that_is_not_a_table(tmp_path):
    config = tmp_path / "sources.toml"
    config.write_text("sources = [1, 2]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] table"):
        load_sources(config)


def test_cli_sync_prints_one_line_not_a_traceback(settings, tmp_path, capsys, monkeypatch):
    config = tmp_path / "bad_sources.toml"
    config.write_text(GOOD + 'max_delete_share = "abc"\n', encoding="utf-8")
    monkeypatch.setenv("KBOPS_HOME", str(settings.home))
    monkeypatch.setenv("KBOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KBOPS_SOURCES", str(config))
    assert main(["sync"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "max_delete_share" in err and str(config) in err


def test_max_price_per_source_is_read(tmp_path):
    config = tmp_path / "sources.toml"
    config.write_text(GOOD + "max_price = 5000\n", encoding="utf-8")
    [source] = load_sources(config)
    assert source.max_price == 5000
