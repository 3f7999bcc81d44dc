"""The second half of the deck: technology choices, measured results, reliability, the
dashboard, difficulties and improvements. Each function takes the build's
:class:`~pipelines.presentation.slides.Deck` and returns the slide's HTML.

Benchmark figures come from ``outputs/bench/*.json`` only (:func:`facts.benchmarks`); one that
was not run is shown as such, with its command. Screenshots are the files
:mod:`~pipelines.presentation.screens` took from the running dashboard.
"""

from __future__ import annotations

from typing import Any

from IPython.display import HTML

from pipelines.presentation import blocks as B
from pipelines.presentation import facts, figures
from pipelines.presentation.slides import Deck

# (what we use, the alternative we rejected, why) — versions are read at build time
CHOICES: tuple[tuple[str, str, str], ...] = (
    (
        "Kafka {kafka} (KRaft)",
        "RabbitMQ, fichiers",
        "rejouable (offsets), partitionné, lu par Spark Structured Streaming avec checkpoint",
    ),
    (
        "PySpark {pyspark} Structured Streaming",
        "scripts pandas",
        "le même code en local[*], sur un cluster standalone et via spark-submit",
    ),
    (
        "Delta Lake {delta-spark}",
        "Parquet nu, MERGE",
        "transactions ACID ; ajout idempotent (txnAppId) puis recalcul des dates touchées, "
        "plus rapide qu'un MERGE sur 2 cœurs (docs/data-model.md)",
    ),
    (
        "FerretDB {ferretdb} (SQLite)",
        "MongoDB dans Docker",
        "pas de Docker sur nos machines ; protocole MongoDB ; MongoDB 7 en docker-compose",
    ),
    (
        "cron + papermill {papermill}",
        "Airflow",
        "un notebook paramétré par job, une crontab, aucun serveur ; ledger dans MongoDB",
    ),
    (
        "Voila {voila} + ipywidgets + bqplot",
        "Dash, Streamlit",
        "le notebook du data scientist devient l'application ; aucun build JS ; hors ligne",
    ),
    (
        "manifeste SQLite",
        "déplacer sans trace, JSON lines",
        "BEGIN IMMEDIATE entre jobs concurrents ; « une seule fois » est une contrainte",
    ),
    (
        "reveal.js via nbconvert {nbconvert}",
        "PowerPoint",
        "généré depuis le dépôt et un vrai run, jamais périmé ; une commande",
    ),
)


def choices(deck: Deck) -> HTML:
    v = facts.versions(deck.settings)
    rows = [
        [f"<b>{B.esc(use.format(**v))}</b>", B.esc(alt), B.esc(why)] for use, alt, why in CHOICES
    ]
    return HTML(
        B.table(["choix", "alternative écartée", "pourquoi"], rows, "tm-small")
        + B.note("Versions lues dans l'environnement installé et les paramètres.")
    )


def served(deck: Deck) -> HTML:
    s = deck.serving
    if s["empty"]:
        return HTML(
            B.missing(
                f"aucune donnée servie dans {s['database']}", f"make slides ENV={deck.settings.env}"
            )
        )
    chart = figures.delay_by_hour(s["by_hour"], deck.img / "delay_by_hour.png")
    docs = sum(s["counts"][k] for k in s["counts"] if k not in ("pipeline_runs",))
    return HTML(
        B.figures(
            B.figure("flights", s["totals"]["flights"], "vols servis"),
            B.figure("on_time_pct", s["on_time_pct"], "départs à l'heure (≤ 15 min)", 1, "%"),
            B.figure("mean_dep_delay", s["mean_dep_delay"], "retard moyen au départ", 1, "min"),
            B.figure("cancelled", s["totals"]["cancelled"], "vols annulés"),
            B.figure("documents", docs, "documents MongoDB"),
        )
        + B.image(f"img/{chart.name}", "vols et retard moyen par heure", "tm-chart")
        + B.note(
            f"Lu dans <code>kpi_profile</code> (jours {B.esc(', '.join(s['days'][:3]))}"
            f"{' …' if len(s['days']) > 3 else ''}) : {deck.where}"
        )
    )


def backfill(deck: Deck) -> HTML:
    b = deck.bench["backfill"]
    if not b["ran"]:
        return HTML(B.missing(b["what"], b["command"]))
    runs = b["data"]["runs"]
    chart = figures.backfill(runs, deck.img / "backfill.png")
    year = runs[-1]
    target = year.get("target_seconds")
    verdict = (
        f"cible {B.num(target)} s : {'atteinte' if year['total_seconds'] <= target else 'manquée'}"
        if target
        else "pas de cible"
    )
    return HTML(
        B.lead(
            f"Le chemin réel (rejeu → Kafka → Spark → Delta → FerretDB) : "
            f"{B.num(year['events'])} événements en {B.num(year['total_seconds'], 1)} s, "
            f"{verdict}."
        )
        + B.image(f"img/{chart.name}", "temps du backfill par étape", "tm-chart")
        + B.note(
            f"<code>{b['path']}</code>, mesuré le {B.esc(facts.when_text(b['when']))} "
            f"(<code>{B.esc(b['command'])}</code>)"
        )
    )


def _row(name: str, b: dict[str, Any], value: str, target: str, ok: bool | None) -> list[str]:
    verdict = "—" if ok is None else ("✔ atteinte" if ok else "✘ manquée")
    return [B.esc(b["what"]), value, target, verdict, f"{B.esc(facts.when_text(b['when']))}"]


def others(deck: Deck) -> HTML:
    bench = deck.bench
    rows, todo = [], []
    lat = bench["latency"]
    if lat["ran"]:
        d = lat["data"]
        p95, target = d["latency_s"]["p95"], d.get("targets", {}).get("p95_s")
        rows.append(
            _row(
                "latency",
                lat,
                f"p50 {B.num(d['latency_s']['p50'], 1)} s · p95 {B.num(p95, 1)} s",
                f"p95 ≤ {B.num(target)} s",
                p95 <= target if target else None,
            )
        )
        chart = figures.latency(d["latency_s"], target, deck.img / "latency.png")
    else:
        todo.append(lat)
        chart = None
    for name in ("dashboard_read_all", "dashboard_year"):
        b = bench[name]
        if not b["ran"]:
            todo.append(b)
            continue
        d = b["data"]
        if name == "dashboard_read_all":
            first, fc = d["first_render_read"]["median_s"], d["page_in_process"]["filter_change_ms"]
            tgt = d["targets"]["first_render_read_s"]
            rows.append(
                _row(
                    name,
                    b,
                    f"1er rendu (lectures) {B.num(first, 2)} s · filtre p95 {B.num(fc['p95'])} ms",
                    f"≤ {B.num(tgt)} s",
                    first <= tgt,
                )
            )
        else:
            first, fc = d["first_render"]["median_s"], d["filter_change"]["client_ms"]["p95"]
            tgt = d["targets"]["filter_change_p95_ms"]
            rows.append(
                _row(
                    name,
                    b,
                    f"1er rendu {B.num(first, 1)} s · filtre p95 {B.num(fc)} ms",
                    f"filtre p95 ≤ {B.num(tgt)} ms",
                    fc <= tgt,
                )
            )
    for name in ("produce", "runner_overhead"):
        b = bench[name]
        if not b["ran"]:
            todo.append(b)
            continue
        d = b["data"]
        if name == "produce":
            best = max(d["python_producer"].values(), key=lambda p: p["events_per_s"])
            rows.append(
                _row(
                    name,
                    b,
                    f"{B.num(best['events_per_s'])} évén./s",
                    f"≥ {B.num(best['target_events_per_s'])}",
                    best["meets_target"],
                )
            )
        else:
            rows.append(
                _row(
                    name,
                    b,
                    f"+{B.num(d['overhead_s'], 1)} s ({B.num(d['overhead_pct'], 1)} %)",
                    B.esc(d["target"]),
                    d["target_met"],
                )
            )
    headers = ["benchmark", "mesure", "cible", "verdict", "mesuré le"]
    table = B.table(headers, rows, "tm-small") if rows else ""
    missing = "".join(B.missing(b["what"], b["command"]) for b in todo)
    left = table + missing + B.note("Valeurs lues dans <code>outputs/bench/*.json</code>.")
    if chart is None:
        return HTML(left)
    return HTML(B.columns(left, B.image(f"img/{chart.name}", "latence", "tm-chart"), widths=[3, 2]))


def reliability(deck: Deck) -> HTML:
    tests = facts.kill_tests()
    by_file: dict[str, list[str]] = {}
    for t in tests:  # one row a file: the slide holds the list however many tests there are
        by_file.setdefault(t["file"], []).append(t["test"].removeprefix("test_").replace("_", " "))
    rows = [
        [f"<code>{B.esc(file)}</code>", " · ".join(B.esc(name) for name in names)]
        for file, names in by_file.items()
    ]
    failed = sum(st.get("failed", 0) for st in deck.ledger["by_job"].values())
    return HTML(
        B.lead(
            "Ce qu'on tue exprès, et ce qui doit survivre : chaque ligne est un test qui "
            "tue (SIGKILL) ou interrompt un composant réel puis vérifie l'état."
        )
        + B.table(["test", "tué → ce qui survit"], rows, "tm-small")
        + B.note(
            f"{B.num(len(tests))} tests trouvés dans <code>tests/</code> au build ; "
            f"runs en échec dans le ledger : {B.num(failed)} ({deck.where})."
        )
    )


def dashboard(deck: Deck, shot: str, caption: str) -> HTML:
    """A screenshot taken by :mod:`screens` (``img/<shot>``), or the command that takes it."""
    if not (deck.img / shot).exists():
        return HTML(B.missing(f"capture {shot}", f"make slides ENV={deck.settings.env}"))
    return HTML(
        B.image(f"img/{shot}", caption, "tm-shot")
        + B.note(f"{B.esc(caption)} — Chromium headless sur Voila, {deck.where}")
    )


def difficulties(deck: Deck) -> HTML:
    lat = deck.bench["latency"]
    lat_text = (
        f"latence p95 mesurée {B.num(lat['data']['latency_s']['p95'], 1)} s pour une "
        f"cible de {B.num(lat['data']['targets']['p95_s'])} s"
        if lat["ran"]
        else "latence non mesurée"
    )
    return HTML(
        B.bullets(
            [
                "<b>FerretDB v1</b> : l'index <code>_id</code> n'était jamais utilisé (expression "
                "différente) ; corrigé dans le source avant <code>go build</code> ; "
                "certaines écritures "
                "de centaines d'opérations bloquent : paquets bornés.",
                "<b>Modèle de service</b> : tout lire par <code>_id</code> (seul index "
                "servi), buckets "
                "et profil précalculé au lieu de <code>$group</code>.",
                "<b>Temps réel sur 2 cœurs</b> : "
                + lat_text
                + " ; le recalcul des KPI partage les "
                "cœurs avec les micro-batchs.",
                "<b>Fuseaux et heure d'été</b> : dates locales de New York, instants en UTC, "
                "changement d'heure du 10 mars testé.",
                "<b>Exactement une fois</b> : offsets Kafka, txnAppId Delta et ReplaceOne par "
                "<code>_id</code> doivent s'accorder après un SIGKILL.",
            ]
        )
    )


def improvements(deck: Deck) -> HTML:
    items = []
    b = deck.bench["backfill"]
    if b["ran"] and b["data"]["runs"][-1].get("target_seconds"):
        year = b["data"]["runs"][-1]
        items.append(
            f"<b>Backfill de l'année</b> : {B.num(year['total_seconds'], 1)} s pour "
            f"une cible de {B.num(year['target_seconds'])} s ; le job météo (un "
            "fichier par heure) et les écritures du lac sont les postes à réduire."
        )
    items += [
        "<b>Latence</b> : séparer le recalcul des KPI des micro-batchs (autre exécuteur), "
        "déclencheur plus court.",
        "<b>Code</b> : découper le paquet en sous-paquets par étape (refactoring en cours), "
        "modules d'une seule responsabilité.",
        "<b>MongoDB 7</b> : une voie de test dédiée, puis un modèle non contraint par FerretDB.",
        "<b>Production</b> : authentification devant Voila, stockage objet (s3a://) pour le lac "
        "et les checkpoints, cluster Spark réel.",
    ]
    return HTML(B.bullets(items))
