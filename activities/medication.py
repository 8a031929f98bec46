"""Medication records written on behalf of MedicationWorkflow (idempotent by id)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from temporalio import activity

from store.db import session_scope
from store.models import DispenseRow, MedicationEventRow, MedicationOrderRecord, utcnow
from store.shapes import plain
from workflows.contracts.medication import DispenseEntry, MedicationEventEntry, MedicationInput, MedicationSync


class MedicationActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def open_order(self, order: MedicationInput) -> None:
        with session_scope(self.engine) as session:
            terms = order.order
            if session.get(MedicationOrderRecord, terms.order_id) is None:
                session.add(
                    MedicationOrderRecord(
                        id=terms.order_id,
                        participant_id=order.participant_id,
                        site=order.site,
                        drug=terms.drug,
                        status="active",
                        start_date=terms.start,
                        stop_date=terms.stop,
                        rules=order.rules,
                        order=plain(terms),
                        created_by=terms.prescriber[:32],
                        home_order_id=order.guest.home_order_id if order.guest else None,
                    )
                )

    @activity.defn
    def record_dispense(self, entry: DispenseEntry) -> None:
        with session_scope(self.engine) as session:
            if session.get(DispenseRow, entry.dispense_id) is None:
                given = entry.dispense
                session.add(
                    DispenseRow(
                        id=entry.dispense_id,
                        order_id=entry.order_id,
                        participant_id=entry.participant_id,
                        day=date.fromisoformat(given.day),
                        kind=given.kind,
                        dose=given.dose,
                        unit=given.unit,
                        take_home_count=given.take_home_count,
                        bottle_ids=list(given.bottle_ids),
                        covered_dates=entry.covered_dates,
                        lot=given.lot,
                        injection_site=given.site,
                        note=entry.note,
                        actor=given.actor,
                    )
                )

    @activity.defn
    def record_event(self, event: MedicationEventEntry) -> None:
        with session_scope(self.engine) as session:
            if session.get(MedicationEventRow, event.id) is None:
                session.add(MedicationEventRow(**{**plain(event), "day": date.fromisoformat(event.day)}))

    @activity.defn
    def sync_order(self, sync: MedicationSync) -> None:
        with session_scope(self.engine) as session:
            row = session.get(MedicationOrderRecord, sync.order_id)
            if row is None:
                return
            row.status, row.order = sync.status, plain(sync.order)
            row.eligibility = plain(sync.eligibility) if sync.eligibility is not None else {}
            if sync.ledger is not None:
                row.ledger = {**plain(sync.ledger), "closed_days": sync.closed_days}
            row.stop_date = sync.order.stop
            row.updated_at = utcnow()
            session.add(row)

    def all(self) -> list:
        return [self.open_order, self.record_dispense, self.record_event, self.sync_order]
