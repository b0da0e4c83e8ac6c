"""`tidings publish`: raw JSON with CloudEvents headers, or validated against an Event class."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_raw_json_is_published_with_cloudevents_headers(cli: Cli) -> None:
    cli.ok("topics", "create", "orders", "--partitions", "3")
    out = cli.json("publish", "orders", "--type", "CliRawOrder", "--key", "42", '{"id": 7}')
    assert out["topic"] == "orders" and out["offset"] == 0 and out["validated"] is False
    text = cli.ok("publish", "orders", "-t", "CliRawOrder", "-k", "42", '{"id": 8}').stdout
    assert f"to orders[{out['partition']}]@1" in text

    first, second = cli.json_lines("tail", "orders", "--from-beginning")
    assert first["id"] == out["event_id"]
    assert first["key"] == "42" and first["value"] == {"id": 7} and second["value"] == {"id": 8}
    headers = first["headers"]
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_source"] == "tidings-cli"
    assert headers["ce_type"] == "CliRawOrder"
    assert headers["content-type"] == "application/json"
    assert headers["ce_time"].endswith("Z")


def test_json_can_come_from_stdin(cli: Cli) -> None:
    cli.ok("topics", "create", "orders")
    cli.ok("publish", "orders", "--type", "CliRawOrder", "-", input='{"id": 1}')
    (record,) = cli.json_lines("tail", "orders")
    assert record["value"] == {"id": 1}


def test_delay_holds_the_event_back(cli: Cli) -> None:
    cli.ok("topics", "create", "orders")
    out = cli.json("publish", "orders", "--type", "CliRawReminder", "--delay", "5m", '{"id": 1}')
    assert out["offset"] is None and out["deliver_at"] is not None
    (topic,) = cli.json("topics", "list")
    assert topic["delayed_pending"] == 1 and topic["events"] == 0
    text = cli.ok("publish", "orders", "--type", "CliRawReminder", "--delay", "30s", "{}").stdout
    assert "Scheduled CliRawReminder" in text and "(in 30s)" in text


def test_registered_event_types_are_validated_with_app(cli: Cli) -> None:
    app = "tests.cli.shop_app:app"
    good = '{"order_id": "o-1", "amount": 5}'
    out = cli.json("publish", "shop-orders", "--type", "ShopOrderPlaced", "--app", app, good)
    assert out["validated"] is True
    (record,) = cli.json_lines("tail", "shop-orders")
    assert record["value"] == {"order_id": "o-1", "amount": 5}
    bad = cli("publish", "shop-orders", "-t", "ShopOrderPlaced", "--app", app, '{"amount": "x"}')
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: Invalid ShopOrderPlaced (ShopOrderPlaced): order_id:")
    assert "amount: Input should be a valid integer" in bad.stderr


def test_bad_json_says_how_to_quote_it(cli: Cli) -> None:
    cli.ok("topics", "create", "orders")
    result = cli("publish", "orders", "--type", "CliRawOrder", '{"id": 1')
    assert result.exit_code == 1
    assert result.stderr.startswith("error: JSON is invalid: Expecting")
    assert "Quote it for the shell" in result.stderr
    result = cli("publish", "orders", "--type", "CliRawOrder", "[1, 2]")
    assert result.exit_code == 1
    assert "JSON must be an object" in result.stderr


def test_publishing_to_a_missing_topic_is_refused(cli: Cli) -> None:
    cli.ok("topics", "create", "orders")
    result = cli("publish", "ordres", "--type", "CliRawOrder", "{}")
    assert result.exit_code == 1
    assert "No topic 'ordres'" in result.stderr and "Did you mean 'orders'?" in result.stderr
    assert [t["name"] for t in cli.json("topics", "list")] == ["orders"]


def test_an_unknown_type_with_app_is_refused_with_the_apps_types(cli: Cli) -> None:
    app = "tests.cli.shop_app:app"
    cli.ok("topics", "create", "shop-orders")
    result = cli("publish", "shop-orders", "--type", "ShopOrderPlacd", "--app", app, "{}")
    assert result.exit_code == 1, result.output
    assert "Unknown event type 'ShopOrderPlacd'" in result.stderr
    assert "Did you mean 'ShopOrderPlaced'?" in result.stderr
    assert "ShopOrderPlaced" in result.stderr.split("Did you mean")[1]
    stored = {t["name"]: t["events"] for t in cli.json("topics", "list")}
    assert stored.get("shop-orders", 0) == 0


def test_without_app_stderr_says_the_event_was_not_validated(cli: Cli) -> None:
    cli.ok("topics", "create", "orders")
    for extra in ((), ("--json",)):
        result = cli.ok("publish", "orders", "--type", "CliRawOrder", "{}", *extra)
        assert "not validated" in result.stderr and "--app" in result.stderr
