//! Subscription health on DynamoDB: the pure transitions of [`crate::decision::health`] applied
//! with a compare-and-set, so concurrent outcomes, probe claims and admin changes never
//! overwrite one another.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{attribute, from_item, key, DynamoStore};
use crate::aws::sdk_error;
use crate::domain::Subscription;
use crate::ports::{StoreError, StoreResult};

/// Reads before giving up when other writers keep winning (each loss means someone else's
/// change landed, so this is only reached under extreme contention).
const CAS_TRIES: u32 = 32;

impl DynamoStore {
    /// Reads the subscription, lets `change` alter it, and writes back `health`, `enabled`,
    /// `disabled_reason` and `updated_at` only if neither `health` nor `updated_at` changed
    /// meanwhile (every admin update sets `updated_at`); otherwise reads again. `None` when the
    /// subscription does not exist.
    pub(super) async fn change_health<R>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Subscription) -> R,
    ) -> StoreResult<Option<R>> {
        for _ in 0..CAS_TRIES {
            let Some(item) = self.get_item(&self.subscriptions, key("id", id)).await? else {
                return Ok(None);
            };
            // The stored shapes themselves, so the comparison is exact.
            let old_health = item
                .get("health")
                .cloned()
                .unwrap_or(AttributeValue::Null(true));
            let old_updated = item.get("updated_at").cloned().ok_or_else(|| {
                StoreError::Corrupt(format!("subscription {id} without updated_at"))
            })?;
            let mut sub: Subscription = from_item(item)?;
            let result = change(&mut sub);
            let written = self
                .client
                .update_item()
                .table_name(&self.subscriptions)
                .set_key(Some(key("id", id)))
                .update_expression(
                    "SET health = :h, enabled = :e, disabled_reason = :r, updated_at = :t",
                )
                .condition_expression(
                    "updated_at = :old_t AND (health = :old_h OR attribute_not_exists(health))",
                )
                .expression_attribute_values(":h", attribute(&sub.health)?)
                .expression_attribute_values(":e", attribute(&sub.enabled)?)
                .expression_attribute_values(":r", attribute(&sub.disabled_reason)?)
                .expression_attribute_values(":t", attribute(&sub.updated_at)?)
                .expression_attribute_values(":old_t", old_updated)
                .expression_attribute_values(":old_h", old_health)
                .send()
                .await;
            match written {
                Ok(_) => return Ok(Some(result)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    // Spread the retries of writers that lost together.
                    let pause = rand::random_range(1..=20u64);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(sdk_error("UpdateItem", e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "subscription {id}: health update lost {CAS_TRIES} races in a row"
        )))
    }
}
