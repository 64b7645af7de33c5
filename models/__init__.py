"""Every table module, imported so SQLModel.metadata is complete for Alembic."""

from models import audit, evaluation, identity, patient, procedure, protocol, symptom_log

__all__ = ["audit", "evaluation", "identity", "patient", "procedure", "protocol", "symptom_log"]
