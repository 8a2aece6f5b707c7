"""kbops.sources.files: record and document readers quarantine bad input row by row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbops.sources.config import SourceConfig
from kbops.sources.files import Parsed, Rejected, read_documents, read_records

PRICE_HEADER = "sku,price,currency\n"
PRODUCT_HEADER = "sku,name_zh,name_en,stock,shipping_class,warranty_months\n"


def price_source(path: Path, **kw) -> SourceConfig:
    return SourceConfig(name="prices", type="records", kind="price", path=path, glob=kw.pop("glob", "*.csv"), **kw)


def product_source(path: Path, **kw) -> SourceConfig:
    return SourceConfig(name="products", type="records", kind="product", path=path, glob=kw.pop("glob", "*.csv"), **kw)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def parsed(items) -> dict[str, Parsed]:
    return {i.key: i for i in items if isinstance(i, Parsed)}


def rejected(items) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


# --- prices -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["¥abc", "-5", "待定", "1.999", "", "12元"])
def test_bad_price_is_rejected_naming_the_value(tmp_path, bad):
    path = write(tmp_path, "prices.csv", PRICE_HEADER + f"LM-1001,299.00,CNY\nLM-1002,{bad},CNY\n")
    items = list(read_records(price_source(path)))
    assert list(parsed(items)) == ["LM-1001"]
    [rej] = rejected(items)
    assert rej.location == "prices.csv:3"
    assert repr(bad) in rej.reason
    assert not rej.whole_file
    assert "LM-1002" in rej.raw


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("299", "299.00"), ("39.9", "39.90"), ("¥1,299.5", "1299.50"), ("￥ 89", "89.00"), ("0", "0.00")],
)
def test_price_is_canonical_decimal(tmp_path, raw, canonical):
    path = write(tmp_path, "prices.csv", PRICE_HEADER + f'LM-1001,"{raw}",CNY\n')
    [item] = read_records(price_source(path))
    assert isinstance(item, Parsed)
    assert item.payload["price"] == canonical


def test_unknown_currency_is_rejected(tmp_path):
    path = write(tmp_path, "prices.csv", PRICE_HEADER + "LM-1001,299.00,RMB\nLM-1002,89.00,cny\n")
    items = list(read_records(price_source(path)))
    [rej] = rejected(items)
    assert "'RMB'" in rej.reason and "currency" in rej.reason
    # lower-case known currencies are accepted and normalised
    assert parsed(items)["LM-1002"].payload["currency"] == "CNY"


def test_price_validity_window_must_be_ordered(tmp_path):
    path = write(
        tmp_path,
        "prices.csv",
        "sku,price,currency,valid_from,valid_to\n"
        "LM-1001,299.00,CNY,2026-11-01,2026-11-30\n"
        "LM-1002,89.00,CNY,2026-12-01,2026-11-01\n"
        "LM-1003,359.00,CNY,next week,\n",
    )
    items = list(read_records(price_source(path)))
    assert parsed(items)["LM-1001"].payload["valid_from"] == "2026-11-01T00:00:00+00:00"
    reasons = {r.location: r.reason for r in rejected(items)}
    assert set(reasons) == {"prices.csv:3", "prices.csv:4"}
    assert "valid_from" in reasons["prices.csv:3"] and "not before" in reasons["prices.csv:3"]
    assert "'next week'" in reasons["prices.csv:4"]


# --- products ---------------------------------------------------------------------


def test_negative_stock_is_rejected(tmp_path):
    path = write(
        tmp_path,
        "products.csv",
        PRODUCT_HEADER + "LM-1001,电饭煲,Rice Cooker,142,standard,24\nLM-1002,水壶,Kettle,-3,free,12\n",
    )
    items = list(read_records(product_source(path)))
    assert parsed(items)["LM-1001"].payload["stock"] == 142
    [rej] = rejected(items)
    assert rej.location == "products.csv:3"
    assert "stock" in rej.reason and "'-3'" in rej.reason


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ("LM-1002,水壶,Kettle,many,free,12", "'many'"),
        ("LM-1002,水壶,Kettle,5,teleport,12", "'teleport'"),
        ("LM-1002,,,5,free,12", "name"),
        (",水壶,Kettle,5,free,12", "'sku'"),
    ],
)
def test_malformed_product_row_is_rejected(tmp_path, row, named):
    path = write(tmp_path, "products.csv", PRODUCT_HEADER + "LM-1001,电饭煲,Rice Cooker,142,standard,24\n" + row + "\n")
    items = list(read_records(product_source(path)))
    assert list(parsed(items)) == ["LM-1001"]
    [rej] = rejected(items)
    assert named in rej.reason


def test_row_with_wrong_cell_count_is_rejected(tmp_path):
    path = write(tmp_path, "prices.csv", PRICE_HEADER + "LM-1001,1,299.00,CNY\nLM-1002,89.00\nLM-1003,359.00,CNY\n")
    items = list(read_records(price_source(path)))
    assert list(parsed(items)) == ["LM-1003"]
    assert [r.location for r in rejected(items)] == ["prices.csv:2", "prices.csv:3"]


def test_missing_required_column_rejects_whole_file_and_yields_no_records(tmp_path):
    path = write(tmp_path, "prices.csv", "sku,currency\nLM-1001,CNY\nLM-1002,CNY\n")
    items = list(read_records(price_source(path)))
    assert len(items) == 1
    [rej] = items
    assert isinstance(rej, Rejected) and rej.whole_file
    assert "'price'" in rej.reason


def test_field_mapping_reads_renamed_columns(tmp_path):
    path = write(tmp_path, "prices.csv", "sku,Price (CNY),currency\nLM-1001,299,CNY\n")
    source = price_source(path, fields={"price": "Price (CNY)"})
    [item] = read_records(source)
    assert isinstance(item, Parsed)
    assert item.payload == {"sku": "LM-1001", "price": "299.00", "currency": "CNY"}


def test_unmapped_renamed_column_is_reported_by_its_file_name(tmp_path):
    path = write(tmp_path, "prices.csv", "sku,Price (CNY),currency\nLM-1001,299,CNY\n")
    [rej] = read_records(price_source(path, fields={"price": "Preis"}))
    assert isinstance(rej, Rejected) and rej.whole_file
    assert "'Preis'" in rej.reason


def test_invalid_utf8_line_is_rejected_and_other_lines_are_read(tmp_path):
    content = (PRICE_HEADER + "LM-1001,299.00,CNY\n").encode() + b"LM-1002,\xff\xfe89,CNY\n" + b"LM-1003,359.00,CNY\n"
    path = write(tmp_path, "prices.csv", content)
    items = list(read_records(price_source(path)))
    assert set(parsed(items)) == {"LM-1001", "LM-1003"}
    [rej] = rejected(items)
    assert rej.location == "prices.csv:3"
    assert "UTF-8" in rej.reason


def test_rows_after_an_invalid_utf8_line_keep_their_file_line_number(tmp_path):
    content = (PRICE_HEADER + "LM-1001,299.00,CNY\n").encode() + b"LM-1002,\xff89,CNY\n" + b"LM-1003,-1,CNY\n"
    path = write(tmp_path, "prices.csv", content)
    locations = sorted(r.location for r in rejected(read_records(price_source(path))))
    assert locations == ["prices.csv:3", "prices.csv:4"]


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, "prices.csv", b"\xef\xbb\xbf" + (PRICE_HEADER + "LM-1001,299.00,CNY\n").encode())
    assert list(parsed(read_records(price_source(path)))) == ["LM-1001"]


def test_directory_source_reads_every_matching_file(tmp_path):
    folder = tmp_path / "prices"
    folder.mkdir()
    write(folder, "a.csv", PRICE_HEADER + "LM-1001,299.00,CNY\n")
    write(folder, "b.csv", PRICE_HEADER + "LM-1002,89.00,CNY\n")
    write(folder, "notes.txt", "not a price file")
    assert sorted(parsed(read_records(price_source(folder)))) == ["LM-1001", "LM-1002"]


# --- JSONL records ----------------------------------------------------------------


def test_jsonl_records_are_checked_like_csv(tmp_path):
    lines = [
        json.dumps({"sku": "LM-1001", "price": 299, "currency": "CNY"}),
        json.dumps({"sku": "LM-1002", "price": "¥abc", "currency": "CNY"}, ensure_ascii=False),
        "not json",
        json.dumps(["LM-1003", 1]),
        "",
        json.dumps({"sku": "LM-1004", "price": "¥1,299.5", "currency": "usd"}, ensure_ascii=False),
    ]
    path = write(tmp_path, "prices.jsonl", "\n".join(lines) + "\n")
    items = list(read_records(price_source(path, glob="*.jsonl")))
    ok = parsed(items)
    assert ok["LM-1001"].payload["price"] == "299.00"
    assert ok["LM-1004"].payload == {"sku": "LM-1004", "price": "1299.50", "currency": "USD"}
    reasons = {r.location: r.reason for r in rejected(items)}
    assert set(reasons) == {"prices.jsonl:2", "prices.jsonl:3", "prices.jsonl:4"}
    assert "'¥abc'" in reasons["prices.jsonl:2"]
    assert "JSON" in reasons["prices.jsonl:3"]
    assert "object" in reasons["prices.jsonl:4"]


def test_jsonl_invalid_utf8_line_is_rejected_and_other_lines_are_read(tmp_path):
    good = json.dumps({"sku": "LM-1001", "price": "299", "currency": "CNY"}).encode()
    path = write(tmp_path, "prices.jsonl", good + b"\n" + b'{"sku": "LM-1002", "price": "\xff"}\n')
    items = list(read_records(price_source(path, glob="*.jsonl")))
    assert list(parsed(items)) == ["LM-1001"]
    [rej] = rejected(items)
    assert "UTF-8" in rej.reason


# --- documents --------------------------------------------------------------------


def docs_source(folder: Path, **kw) -> SourceConfig:
    return SourceConfig(name="policies", type="documents", kind="policy", path=folder, glob="*.md", **kw)


@pytest.fixture
def policy_folder(tmp_path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    write(folder, "returns.zh.md", "# 退换货政策\n\n## 可以退货吗？\n支持7天无理由退货。\n")
    write(folder, "shipping.md", "# Shipping\n\n## How long does delivery take?\nStandard delivery takes 2-4 days.\n")
    return folder


def test_documents_are_read_with_title_and_language(policy_folder):
    items = {i.key: i for i in read_documents(docs_source(policy_folder))}
    assert set(items) == {"returns.zh.md", "shipping.md"}
    assert items["returns.zh.md"].payload["title"] == "退换货政策"
    assert items["returns.zh.md"].payload["lang"] == "zh"
    assert items["shipping.md"].payload["lang"] == "en"
    assert "2-4 days" in items["shipping.md"].payload["text"]


def test_oversized_document_is_rejected(policy_folder):
    write(policy_folder, "huge.en.md", "# Huge\n\n## Question?\n" + "answer " * 100)
    items = list(read_documents(docs_source(policy_folder, max_document_bytes=200)))
    [rej] = rejected(items)
    assert rej.location == "huge.en.md" and rej.whole_file
    assert "200" in rej.reason and "max_document_bytes" in rej.reason
    assert set(parsed(items)) == {"returns.zh.md", "shipping.md"}


def test_invalid_utf8_document_is_rejected(policy_folder):
    write(policy_folder, "gbk.zh.md", "# 发票\n\n## 能开发票吗？\n可以。\n".encode("gbk"))
    items = list(read_documents(docs_source(policy_folder)))
    [rej] = rejected(items)
    assert rej.location == "gbk.zh.md" and rej.whole_file
    assert "UTF-8" in rej.reason
    assert set(parsed(items)) == {"returns.zh.md", "shipping.md"}


def test_empty_document_is_rejected(policy_folder):
    write(policy_folder, "blank.md", " \n\n")
    [rej] = rejected(read_documents(docs_source(policy_folder)))
    assert rej.location == "blank.md" and "empty" in rej.reason
