//! The reconciler's records: the event replay cursor, its findings and the parking lot.

use super::*;

/// The event replay cursor: `pk = CURSOR#stripe-events`, `sk = CURSOR`.
const CURSOR_PK: &str = "CURSOR#stripe-events";

impl stockbridge_app::ports::CursorStore for DynamoStore {
    async fn cursor(&self) -> Result<Option<stockbridge_app::ports::Cursor>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(CURSOR_PK.to_owned(), "CURSOR")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let Some(a) = r.item() else { return Ok(None) };
        let event_id = match a.get("event_id") {
            None => None,
            Some(_) => Some(
                StripeEventId::parse(get_s(a, "event_id", CURSOR_PK)?)
                    .map_err(|e| corrupt(CURSOR_PK, e.to_string()))?,
            ),
        };
        Ok(Some(stockbridge_app::ports::Cursor {
            event_id,
            created: get_n(a, "created", CURSOR_PK)?,
        }))
    }

    async fn advance_cursor(
        &self,
        previous: Option<&stockbridge_app::ports::Cursor>,
        next: &stockbridge_app::ports::Cursor,
    ) -> Result<(), StoreError> {
        let mut item = key(CURSOR_PK.to_owned(), "CURSOR");
        item.insert("kind".into(), s("cursor"));
        if let Some(id) = &next.event_id {
            item.insert("event_id".into(), s(id.as_str()));
        }
        item.insert("created".into(), n(next.created));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            // The time is what the replay reads; a run that moved it first wins.
            Some(p) => put
                .condition_expression("created = :prev")
                .expression_attribute_values(":prev", n(p.created)),
        };
        put.send().await.map_err(sdk_error)?;
        Ok(())
    }
}

impl stockbridge_app::ports::ReconciliationLog for DynamoStore {
    /// `pk = RECON#{yyyy-mm-dd}`, `sk = {ms:013}#{subject}`: a day's findings in one partition.
    async fn record(
        &self,
        at: Timestamp,
        d: &stockbridge_domain::invariants::Discrepancy,
        repaired: bool,
    ) -> Result<(), StoreError> {
        let day = stockbridge_app::message::rfc3339(at)
            .chars()
            .take(10)
            .collect::<String>();
        let mut item = key(
            format!("RECON#{day}"),
            &format!("{:013}#{}", at.0, d.subject),
        );
        item.insert("kind".into(), s("discrepancy"));
        item.insert("what".into(), s(d.what));
        item.insert("subject".into(), s(d.subject.clone()));
        item.insert("expected".into(), s(d.expected.clone()));
        item.insert("found".into(), s(d.found.clone()));
        item.insert(
            "action".into(),
            s(serde_json::to_string(&d.action).map_err(|e| corrupt(&d.subject, e.to_string()))?),
        );
        item.insert("repaired".into(), AttributeValue::Bool(repaired));
        if let Some(cause) = d.cause {
            item.insert("cause".into(), s(cause));
        }
        item.insert("at".into(), n(at.0));
        if let Some(r) = self.retention {
            item.insert("expires_at".into(), n(r.expires_at(at)));
        }
        self.put(item).await
    }
}

/// Parked events and repairs: one partition `PARKED`, `sk = {kind}:{id}`, the record as JSON
/// in `doc` (a few items: they are failures waiting for a person).
const PARKED_PK: &str = "PARKED";

impl stockbridge_app::parking::ParkingLot for DynamoStore {
    async fn parked(&self) -> Result<Vec<stockbridge_app::parking::Parked>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(PARKED_PK))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(a) = pages.next().await {
            out.push(parse_doc(&a.map_err(sdk_error)?, PARKED_PK)?);
        }
        Ok(out)
    }

    async fn save_parked(
        &self,
        record: &stockbridge_app::parking::Parked,
    ) -> Result<(), StoreError> {
        let mut item = key(PARKED_PK.to_owned(), &record.id);
        item.insert("kind".into(), s("parked"));
        item.insert(
            "doc".into(),
            s(serde_json::to_string(record).map_err(|e| corrupt(&record.id, e.to_string()))?),
        );
        self.put(item).await
    }

    async fn remove_parked(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(PARKED_PK.to_owned(), id)))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}
