//! Per-store settings: one record per store (`STORE#{store}` / `SETTINGS`), written by the CLI.

use aws_sdk_dynamodb::types::AttributeValue;
use stockbridge_app::ports::{StoreError, StoreSettings};
use stockbridge_domain::StoreId;
use stockbridge_domain::after_sale::ReturnsPolicy;

use crate::DynamoStore;
use crate::codec::{flag, key, s};
use crate::sdk_error;

fn settings_key(store: &StoreId) -> std::collections::HashMap<String, AttributeValue> {
    key(format!("STORE#{}", store.as_str()), "SETTINGS")
}

impl StoreSettings for DynamoStore {
    async fn returns_policy(&self, store: &StoreId) -> Result<ReturnsPolicy, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(settings_key(store)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(ReturnsPolicy {
            refunds: flag(r.item(), "return_refunds"),
            lost_disputes: flag(r.item(), "return_lost_disputes"),
        })
    }

    async fn set_returns_policy(
        &self,
        store: &StoreId,
        policy: ReturnsPolicy,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(settings_key(store)))
            .update_expression(
                "SET kind = :k, store_id = :s, return_refunds = :r, return_lost_disputes = :d",
            )
            .expression_attribute_values(":k", s("store_settings"))
            .expression_attribute_values(":s", s(store.as_str()))
            .expression_attribute_values(":r", AttributeValue::Bool(policy.refunds))
            .expression_attribute_values(":d", AttributeValue::Bool(policy.lost_disputes))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}
