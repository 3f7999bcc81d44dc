"""The view in the URL (``pipelines.dashboard.share``) and how Voila is served for it
(``pipelines.stack.voila``: preheated kernels, the token off localhost)."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines.core.config import DashboardSettings
from pipelines.core.exceptions import ConfigError
from pipelines.dashboard import share
from pipelines.dashboard.charts import CarrierChart
from pipelines.dashboard.filters import PERIODS
from pipelines.dashboard.panels.board import SORTS
from pipelines.dashboard.share import View, encode, parse
from pipelines.stack import voila


def test_the_default_view_is_the_plain_url() -> None:
    assert parse("") == share.DEFAULT
    assert parse(None) == share.DEFAULT
    assert encode(share.DEFAULT) == ""
    assert encode(View(airports=("EWR", "JFK", "LGA"), every=30), default_every=30) == ""


def test_a_view_goes_through_the_url_and_back() -> None:
    view = View(
        airports=("JFK", "LGA"), airlines=("AA", "DL"), period=None,
        date_from=date(2013, 1, 2), date_to=date(2013, 1, 5), ahead=6, metric="on_time_pct",
        sort="Delay (longest first)", late=True, find="N14228", auto=False, every=60,
    )  # fmt: skip
    query = encode(view)
    assert query == (
        "airports=JFK,LGA&airlines=AA,DL&from=2013-01-02&to=2013-01-05&ahead=6&metric=ontime"
        "&sort=delay&late=1&find=N14228&auto=0&every=60"
    )
    assert parse(query) == view
    assert parse("?" + query) == view
    for period in PERIODS:
        assert parse(encode(View(period=period))).period == period


def test_every_control_value_has_a_url_key() -> None:
    assert set(share.SORT_KEYS.values()) == set(SORTS)
    assert set(share.PERIOD_KEYS.values()) == set(PERIODS)
    assert set(share.METRIC_KEYS.values()) == set(CarrierChart.METRICS)
    assert not set(share.KEYS) & set(share.PAGE_KEYS)


def test_a_hand_typed_link_opens_with_what_it_understood() -> None:
    view = parse("airports=jfk,XXX&airlines=aa, dl&period=later&ahead=9&sort=x&late=yes"
                 "&every=2&from=2013-01-09&wall=1&token=abc&utm=1")  # fmt: skip
    # airports with an unknown code are left out as a whole; airlines upper-cased
    assert view.airports == () and view.airlines == ("AA", "DL")
    # one date is a one-day range, and it wins over a period
    assert (view.period, view.date_from, view.date_to) == (None, date(2013, 1, 9),
                                                           date(2013, 1, 9))  # fmt: skip
    assert (view.ahead, view.sort, view.late, view.every) == (4, "Scheduled time", False, None)
    assert view.ignored == ("airports=jfk,XXX", "ahead=9", "sort=x", "late=yes", "every=2")
    assert parse("from=2013-01-09&to=2013-01-02").date_from == date(2013, 1, 2)  # swapped
    assert parse("airports=EWR,JFK,LGA").airports == ()  # all three: every airport


def test_the_kernel_reads_the_query_string_of_its_request(monkeypatch) -> None:
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    monkeypatch.setenv("QUERY_STRING", "airports=JFK")
    assert not share.preheated() and share.request_query() == "airports=JFK"
    monkeypatch.setenv("VOILA_PREHEAT", "True")  # ran before any request: it must wait
    assert share.preheated() and share.request_query() is None


def test_voila_preheats_kernels_and_asks_a_token_off_localhost(monkeypatch) -> None:
    cmd = voila.command(8866)
    assert "--VoilaConfiguration.preheat_kernel=True" in cmd
    assert "--VoilaConfiguration.default_pool_size=1" in cmd
    assert not any(part.startswith("--Voila.token") for part in cmd)
    cmd = voila.command(8866, DashboardSettings(pool_size=0), ip="0.0.0.0", token="t0k")
    assert not any("preheat" in part for part in cmd)
    assert "--Voila.token=t0k" in cmd and "--Voila.ip=0.0.0.0" in cmd

    monkeypatch.delenv(voila.TOKEN_ENV, raising=False)
    assert voila.token_for("127.0.0.1") is None  # a developer's machine stays open
    with pytest.raises(ConfigError, match=voila.TOKEN_ENV):
        voila.token_for("0.0.0.0")
    monkeypatch.setenv(voila.TOKEN_ENV, "s3cret")
    assert voila.token_for("0.0.0.0") == "s3cret"
    assert voila.TOKEN_ENV not in voila.environment("local")  # never in the kernels' env
