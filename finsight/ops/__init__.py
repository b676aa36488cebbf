"""Operations both teams share: ownership, telemetry, alerts, status and SLOs, read from the warehouse's OPS tables."""
