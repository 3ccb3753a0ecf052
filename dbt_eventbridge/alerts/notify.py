"""Alerts: tell people when syncs fail, reject rows, stop a mass removal, go stale or were interrupted.

Alerts are declared under ``vars: eventbridge: alerts:`` and checked after each run.
Each (alert, sync, trigger) has a state, "firing" or "ok", kept in an :class:`AlertStore`.
A notification goes out only when that state changes: one alert when a condition starts,
one recovery when it ends, however many runs it lasts. A state change is saved only once
its notification was delivered, so a failed send is tried again on the next run.

Sending never raises and never changes the run's exit code: a notification that could not
be sent is a warning, because an outage of Slack must not fail a data pipeline.

This module is the orchestration, :func:`notify`; the conditions are in
:mod:`dbt_eventbridge.alerts.evaluate`, the wording in :mod:`~dbt_eventbridge.alerts.messages`
and the delivery in :mod:`~dbt_eventbridge.alerts.channels`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping, Sequence

from dbt_eventbridge.alerts.channels import Context, MakeClient, client_factory, describe_error, send
from dbt_eventbridge.alerts.evaluate import SyncStatus, evaluate, with_run_recovery
from dbt_eventbridge.alerts.messages import Notification, build_body, summary
from dbt_eventbridge.alerts.store import FIRING, OK, AlertStore, StateKey
from dbt_eventbridge.config.alerts import AlertConfig

Log = Callable[[str, str], None]  # (level, message), as in sync.py


def _default_log(level: str, message: str) -> None:
    logger = logging.getLogger(__name__)
    logger.log(logging.WARNING if level == "warn" else logging.ERROR if level == "error" else logging.INFO, message)


def notify(alerts: Sequence[AlertConfig], statuses: Sequence[SyncStatus], store: AlertStore, *,
           now: dt.datetime, make_client: MakeClient | None = None, log: Log | None = None,
           env: Mapping[str, str] | None = None) -> list[Notification]:
    """Send a notification for each (alert, sync, trigger) whose state changed; return them all.

    Only the changes that were delivered are saved, so the others are tried again next run.
    Never raises: problems with the store or the senders are logged as warnings.
    ``env`` (default ``os.environ``) is where ``url_env`` and ``routing_key_env`` variables are looked up.
    """
    log = _default_log if log is None else log
    ctx = Context(make_client or client_factory(), os.environ if env is None else env)
    try:
        state = store.load()
    except Exception as e:  # noqa: BLE001 - alerts must never fail the run
        # Without the state every firing condition would be sent again on every run.
        log("warn", f"alerts were not checked: their state could not be read ({type(e).__name__}: {e})")
        return []
    sent: list[Notification] = []
    changes: dict[StateKey, str] = {}
    statuses = with_run_recovery(statuses)
    for alert in alerts:
        for s in statuses:
            if not alert.watches(s.sync):
                continue
            for trigger, holds in evaluate(alert, s, now).items():
                key = (alert.name, s.sync, trigger)
                firing = (changes.get(key) or state.get(key, OK)) == FIRING
                if holds is None or holds == firing:
                    continue
                kind = "alert" if holds else "recovery"
                n = Notification(alert=alert.name, type=alert.type, sync=s.sync, trigger=trigger, kind=kind,
                                 body=build_body(kind, trigger, alert, s, now))
                _deliver(alert, n, summary(kind, trigger, s, now), ctx, log)
                sent.append(n)
                if n.delivered:
                    changes[key] = FIRING if holds else OK
    if changes:
        _save(store, changes, log)
    return sent


def _save(store: AlertStore, changes: dict[StateKey, str], log: Log) -> None:
    try:
        store.save(changes)
    except Exception as e:  # noqa: BLE001
        log("warn", f"the alert state could not be saved ({type(e).__name__}: {e}); the {len(changes)} "
                    "notification(s) just sent will be sent again on the next run")


def _deliver(alert: AlertConfig, n: Notification, line: str, ctx: Context, log: Log) -> None:
    try:
        send(alert, n, line, ctx)
    except Exception as e:  # noqa: BLE001 - a failed send is a warning, never a failed run
        n.error = describe_error(e)
        log("warn", f"alert '{alert.name}' ({alert.type}) could not send the {n.kind} for {n.trigger} on "
                    f"{n.sync}: {n.error}. It will be tried again on the next run.")
        return
    n.delivered = True
    log("info", f"alert '{alert.name}' ({alert.type}): sent the {n.kind} for {n.trigger} on {n.sync}")
