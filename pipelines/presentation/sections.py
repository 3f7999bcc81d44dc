"""The deck's outline: its French section titles in order, and the pipeline stages the
Architecture section walks through, each with the symbol whose code the slide shows.

The notebook's title cells and the tests read these; an excerpt names its symbol by dotted
path (see :mod:`pipelines.presentation.excerpts`, which still finds it after a move).
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS: tuple[str, ...] = (
    "Contexte métier et utilisateur final",
    "Sources de données et fréquences",
    "Méthodologie",
    "Architecture",
    "Automatisation",
    "Gestion des fichiers entrants",
    "Choix technologiques et leur justification",
    "Résultats mesurés",
    "Fiabilité",
    "Le tableau de bord",
    "Difficultés rencontrées",
    "Axes d'amélioration",
)


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: its title, the symbol shown, what it does, excerpt length."""

    title: str
    symbol: str
    role: str
    lines: int = 16


STAGES: tuple[Stage, ...] = (
    Stage(
        "Rejeu des sources vers Kafka",
        "pipelines.sources.replay.Replay._send",
        "Chaque événement de vol est validé puis envoyé au topic Kafka (acks=all, "
        "idempotent) ; un événement invalide part dans le topic des rejets (DLQ).",
    ),
    Stage(
        "Dépôt atomique des fichiers",
        "pipelines.core.files.write_atomic",
        "Météo et référentiels arrivent en fichiers : écrits à côté puis renommés, un job ne "
        "voit jamais un fichier à moitié écrit.",
    ),
    Stage(
        "Micro-batch Spark Structured Streaming",
        "pipelines.jobs.flights_lake.process_batch",
        "Chaque micro-batch Kafka est analysé, ajouté au lac une seule fois, et le tableau "
        "des départs des heures touchées est réécrit.",
        18,
    ),
    Stage(
        "Transformations pures",
        "pipelines.transform.flight_state.flight_updates",
        "Fonctions DataFrame → DataFrame sans effet de bord : l'état d'un vol ne dépend pas "
        "de l'ordre des événements.",
        18,
    ),
    Stage(
        "Delta Lake : ajout exactement une fois",
        "pipelines.lake.tables.Lake.append",
        "Les événements bruts sont ajoutés avec txnAppId / txnVersion : un batch rejoué après "
        "un crash est ignoré par Delta.",
    ),
    Stage(
        "Écriture MongoDB depuis les exécuteurs",
        "pipelines.serving.sinks._write_partition",
        "Chaque partition Spark remplace ses documents par _id (ReplaceOne upsert), par "
        "paquets bornés : relancer un job ne change rien.",
    ),
    Stage(
        "Lecture du tableau de bord",
        "pipelines.dashboard.queries.load_snapshot",
        "Le tableau de bord ne lit que des documents de service, par _id : les heures autour "
        "de l'horloge, les jours affichés, le profil précalculé.",
        18,
    ),
)
