"""Adyen-like settlement provider: ``X-API-Key`` auth, one settlement-detail CSV report per settlement batch."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from finsight.config.models import ApiSource
from finsight.local.mock_apis.data import SETTLEMENT_DETAIL_COLUMNS, AdyenReport, Clock, build_adyen
from finsight.local.mock_apis.faults import Provider, same_secret

__all__ = ["SETTLEMENT_DETAIL_COLUMNS", "build"]

ERROR_TYPES = {400: "validation", 401: "security", 403: "security", 404: "validation", 429: "validation"}


def error(status: int, message: str, code: str = "000") -> Response:
    """Adyen's error body: status, errorCode, message, errorType, pspReference."""
    resp = jsonify(
        status=status,
        errorCode=code,
        message=message,
        errorType=ERROR_TYPES.get(status, "internal" if status >= 500 else "validation"),
        pspReference=uuid.uuid4().hex[:16].upper(),
    )
    resp.status_code = status
    return resp


class AdyenApi:
    def __init__(self, source: ApiSource, credential: str, reports: list[AdyenReport], clock: Clock) -> None:
        if set(source.streams) != {"settlement_details"}:
            raise ValueError(f"adyen mock serves exactly 'settlement_details', config has {sorted(source.streams)}")
        self.path = source.streams["settlement_details"].path
        self.credential = credential
        self.reports = {r.filename: r for r in reports}
        self.clock = clock
        self._lock = threading.Lock()

    def authenticate(self) -> Response | None:
        if not same_secret(request.headers.get("X-API-Key"), self.credential):
            return error(401, "HTTP Status Response - Unauthorized", code="000")
        return None

    def publish(self) -> dict[str, Any]:
        """Activity: the next settlement batch closes and its report is published (a copy of the last one's rows)."""
        with self._lock:
            last = max(self.reports.values(), key=lambda r: r.batch_number)
            batch = last.batch_number + 1
            rows = list(csv.DictReader(io.StringIO(last.csv_text)))
            for i, row in enumerate(rows):
                row["Batch Number"] = str(batch)
                row["Psp Reference"] = f"{row['Psp Reference'][:10]}{batch:04d}{i:02d}"[:16]
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=SETTLEMENT_DETAIL_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
            report = AdyenReport(
                batch_number=batch,
                filename=f"settlement_detail_report_batch_{batch}.csv",
                created_at=datetime.fromtimestamp(self.clock.ts(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                csv_text=buf.getvalue(),
                rows=len(rows),
            )
            self.reports[report.filename] = report
        return {"published": report.filename, "rows": report.rows}

    def list_reports(self) -> Response:
        return jsonify(
            data=[
                {
                    "name": r.filename,
                    "batchNumber": r.batch_number,
                    "reportType": "settlement_detail_report",
                    "createdAt": r.created_at,
                    "rows": r.rows,
                    "size": len(r.csv_text.encode()),
                    "downloadPath": f"{self.path.rstrip('/')}/{r.filename}",  # relative to base_url, like paths
                }
                for r in sorted(list(self.reports.values()), key=lambda r: r.batch_number)
            ]
        )

    def download(self, filename: str) -> Response:
        report = self.reports.get(filename)
        if report is None:
            return error(404, f"Report {filename} not found", code="4040")
        return Response(
            report.csv_text,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{report.filename}"'},
        )


def build(name: str, source: ApiSource, credential: str, *, seed: int, scale: float, clock: Clock) -> Provider:
    api = AdyenApi(source, credential, build_adyen(seed, scale, clock.start), clock)
    bp = Blueprint(f"mock_{name}", __name__)
    bp.add_url_rule(api.path, "reports", api.list_reports, methods=["GET"])
    bp.add_url_rule(f"{api.path.rstrip('/')}/<filename>", "report", api.download, methods=["GET"])
    return Provider(
        name=name,
        blueprint=bp,
        authenticate=api.authenticate,
        error=error,
        mutate=api.publish,
        counts=lambda: {"settlement_details": sum(r.rows for r in api.reports.values())},
    )
