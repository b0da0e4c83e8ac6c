"""`tidings docs`: AsyncAPI 3.0 documents the official parser accepts, for the accounts
example, a stress model, and two apps merged into one document."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tidings.cli import app as cli

ACCOUNTS = "examples.accounts.app:app"
STRESS = "tests.asyncapi.stress.app:app"
SHIPPING = "tests.asyncapi.shipping.app:app"
Errors = Callable[[Path], list[dict[str, Any]]]


def write(tmp_path: Path, name: str, *apps: str) -> Path:
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["docs", *apps, "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def generate(*apps: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["docs", *apps])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_the_accounts_example_validates(
    tmp_path: Path, asyncapi_errors: Errors, suffix: str
) -> None:
    assert asyncapi_errors(write(tmp_path, f"asyncapi.{suffix}", ACCOUNTS)) == []


def test_the_stress_model_validates(tmp_path: Path, asyncapi_errors: Errors) -> None:
    assert asyncapi_errors(write(tmp_path, "stress.yaml", STRESS)) == []


def test_two_apps_merge_into_one_valid_document(tmp_path: Path, asyncapi_errors: Errors) -> None:
    path = write(tmp_path, "merged.json", STRESS, SHIPPING)
    assert asyncapi_errors(path) == []
    doc = json.loads(path.read_text())
    assert doc["info"]["title"] == "stress + shipping"
    ops = doc["operations"]
    assert "stress.send.stress-orders" in ops and "stress-billing.receive.stress-orders" in ops
    assert "stress-shipping.receive.stress-orders" in ops
    assert "StressShipped" in doc["components"]["messages"]
    # a group receives only what its handler accepts; the shared topic appears once
    shipping = [m["$ref"] for m in ops["stress-shipping.receive.stress-orders"]["messages"]]
    assert shipping == ["#/channels/stress-orders/messages/StressOrderCancelled"]
    assert list(doc["channels"]).count("stress-orders") == 1


def test_the_parser_rejects_a_broken_document(tmp_path: Path, asyncapi_errors: Errors) -> None:
    """The validation is real: pydantic's OpenAPI-style discriminator is not AsyncAPI's."""
    doc = generate(STRESS)
    field = doc["components"]["schemas"]["StressOrderPlaced"]["properties"]["payment"]
    field["discriminator"] = field.pop("x-discriminator")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    assert any("discriminator" in e["message"] for e in asyncapi_errors(path))


def test_unions_nested_models_and_versions_resolve_into_components() -> None:
    doc = generate(STRESS)
    schemas = doc["components"]["schemas"]
    placed = schemas["StressOrderPlaced"]
    payment = placed["properties"]["payment"]
    assert payment["oneOf"] == [
        {"$ref": "#/components/schemas/Card"},
        {"$ref": "#/components/schemas/Bank"},
    ]
    assert payment["x-discriminator"]["propertyName"] == "kind"
    assert placed["properties"]["lines"] == {"$ref": "#/components/schemas/Page_Line_"}
    line = schemas["Line"]["properties"]["children"]["items"]
    assert line == {"$ref": "#/components/schemas/Line"}  # recursive
    assert schemas["Bank"]["additionalProperties"] is False
    assert "$defs" not in json.dumps(doc)
    message = doc["components"]["messages"]["StressOrderPlaced"]
    headers = message["headers"]["properties"]
    assert headers["ce_dataschema"]["const"] == "urn:tidings:event:StressOrderPlaced:v3"
    assert headers["ce_type"]["const"] == "StressOrderPlaced"
    assert message["x-tidings-version"] == 3
    assert (
        "ce_dataschema" not in doc["components"]["messages"]["StressAudit"]["headers"]["properties"]
    )


def test_retry_dead_letter_and_delay_channels_of_a_group() -> None:
    doc = generate(STRESS)
    channels, ops = doc["channels"], doc["operations"]
    assert (
        channels["stress-orders.stress-billing.retry"]["address"]
        == "stress-orders.stress-billing.retry"
    )
    assert (
        channels["stress-orders.stress-billing.dlq"]["address"]
        == "stress-orders.stress-billing.dlq"
    )
    assert channels["tidings-delay"]["address"] == "tidings.delay.{tier}"
    assert ops["stress-billing.send.stress-orders.stress-billing.dlq"]["action"] == "send"
    assert ops["stress-billing.receive.stress-orders.stress-billing.retry"]["action"] == "receive"
    group = ops["stress-billing.receive.stress-orders"]["bindings"]["kafka"]["groupId"]
    assert group == {"type": "string", "enum": ["stress-billing"]}


def test_serve_shows_the_page_on_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "docs", ACCOUNTS, "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line[line.index("http://") :].split()[0]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as page:
            html = page.read().decode()
        assert "account-events" in html and "AccountBanned" in html
        with urllib.request.urlopen(url + "asyncapi.json", timeout=10) as raw:
            assert json.loads(raw.read())["asyncapi"] == "3.0.0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_yaml_emitter_reads_back_as_the_same_data(
    tmp_path: Path, read_yaml: Callable[[Path], Any]
) -> None:
    from tidings.schema.yaml import dumps

    data = {
        "plain": "text",
        "tricky: key": ["- dash", "# hash", "a: b", "multi\nline", "'quote\"", "", "null", "yes"],
        "numbers": [0, -1.5, 10**20, True, False, None],
        "empty": {"list": [], "map": {}},
        "nested": [{"a": [{"b": {}}]}, [1, [2]]],
        "unicode": "événement ✓",
    }
    path = tmp_path / "data.yaml"
    path.write_text(dumps(data), encoding="utf-8")
    assert read_yaml(path) == data
    doc = generate(STRESS)
    path.write_text(dumps(doc), encoding="utf-8")
    assert read_yaml(path) == doc
