"""Assemble the worker from settings: database, Jira gateway, mapping, optional Qualio enrichment."""

from __future__ import annotations

from sqlalchemy import Engine

from connector import db
from connector.jira.gateway import JiraGateway, gateway_from_settings
from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.rules import Mapping
from connector.settings import ENV_PREFIX, Settings
from connector.sync.apply import Enricher, Syncer
from connector.sync.worker import Worker


def load_configured_mapping(settings: Settings) -> Mapping:
    """The mapping file from settings (or the shipped default), validated; ValueError names the problem."""
    mapping = load_mapping(settings.mapping_file or default_mapping_path(), project_override=settings.jira_project)
    if not mapping.project:
        raise ValueError(f"no Jira project: set {ENV_PREFIX}JIRA_PROJECT or issue.project in {mapping.path}")
    return mapping


def build_enricher(settings: Settings, engine: Engine | None = None) -> Enricher | None:
    """Enrichment from Qualio, when a key is set; with ``engine``, on the installation's shared Qualio budget
    (every worker and the reconcile together stay under qualio_max_per_minute), else on a per-process one."""
    if not settings.qualio_api_key:
        return None
    from connector.qualio.client import QualioClient
    from connector.qualio.enrich import QualioEnricher

    if engine is not None:
        from connector.ops.reconcile_cmd import qualio_client

        client = qualio_client(settings, engine)
    else:
        client = QualioClient(settings.qualio_url, settings.qualio_api_key, timeout=settings.jira_timeout,
                              max_per_minute=settings.qualio_max_per_minute)
    # A 404 falls back to the payload on the last try: before the attempts could bury the NC.
    return QualioEnricher(client, not_found_attempts=min(3, settings.max_attempts))


def build_syncer(settings: Settings, engine: Engine, gateway: JiraGateway | None = None) -> Syncer:
    return Syncer(engine, gateway or gateway_from_settings(settings), load_configured_mapping(settings),
                  settings.jira_search_lag, build_enricher(settings, engine), settings.worker_lease)


def build_worker(settings: Settings, gateway: JiraGateway | None = None) -> Worker:
    engine = db.make_engine(settings.database_url)
    return Worker(engine, settings, build_syncer(settings, engine, gateway))
