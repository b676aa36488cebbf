"""FinSight data platform control plane: config models, the `finsight` CLI and the local stack."""
