"""Blueprint `services`: MonitoredServices, and pausing their remediation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from paramedic import kube
from paramedic.domain import lifecycle
from paramedic.domain.resources import Service

from . import views
from .current import can, client, listed, whoami, written

bp = Blueprint("services", __name__)


@bp.get("/services")
def services() -> Any:
    whoami()
    items, denied = listed(kube.MONITORED_SERVICES)
    items.sort(key=lambda s: (Service(s).namespace, Service(s).name))
    patchable = {ns: can(client(), "patch", kube.MONITORED_SERVICES, ns) for ns in {Service(s).namespace for s in items}}
    return render_template("services.html", items=[views.service_row(s) for s in items], patchable=patchable,
                           denied=denied)


@bp.post("/ns/<ns>/services/<name>/pause")
def pause(ns: str, name: str) -> Any:
    paused = request.form.get("paused") == "true"
    patch = {"metadata": {"annotations": {lifecycle.PAUSED_ANNOTATION: "true" if paused else None}}}
    written(kube.MONITORED_SERVICES, client().patch(kube.MONITORED_SERVICES, name, patch, ns))
    return redirect(url_for("services.services"))
