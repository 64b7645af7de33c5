"""Every table module, imported so SQLModel.metadata is complete for Alembic."""

from models import audit, identity, patient, procedure, protocol, symptom_log

__all__ = ["audit", "identity", "patient", "procedure", "protocol", "symptom_log"]
