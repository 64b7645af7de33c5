"""Who is calling, and what they may see."""

import uuid
from dataclasses import dataclass

from api.services.records import PatientRef
from models.identity import Role


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    clinic_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    session_id: uuid.UUID
    # A patient token's patient, read with the token (saves /v1/me requests a lookup).
    patient: PatientRef | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    def sees_clinic(self, clinic_id: uuid.UUID) -> bool:
        """Admins see every clinic; staff see their own; patients see only themselves."""
        if self.role == Role.admin:
            return True
        if self.role in (Role.clinician, Role.researcher):
            return self.clinic_id == clinic_id
        return False

    def sees_patient(self, patient_id: uuid.UUID, clinic_id: uuid.UUID) -> bool:
        if self.role == Role.patient:
            return self.patient_id == patient_id
        return self.role in (Role.admin, Role.clinician) and self.sees_clinic(clinic_id)
