//! Single-key writes: an optimistic compare-and-swap on the row's version.

use tokio_postgres::types::ToSql;
use waguard::{BusinessId, ContactKey, ContactUpdate, RecordKey, SenderUpdate, UpdateAction};

use crate::{Attempt, PostgresStore};

impl PostgresStore {
    pub(crate) async fn try_update(
        &self,
        key: &ContactKey,
        contact: &str,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), Attempt> {
        let business = key.business.as_str();
        let record = || Some(RecordKey::Contact(key.clone()));
        let client = self
            .client("update", record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let read_failed = self.read_failed("update", record);
        let load = client
            .prepare_cached(&self.sql.load)
            .await
            .map_err(&read_failed)?;
        let row = client
            .query_one(&load, &[&business, &contact])
            .await
            .map_err(&read_failed)?;
        let version: Option<i64> = row.get(1);
        let action = update(row.get(0), row.get(2)).map_err(Attempt::Fail)?;
        let (sql, written) = match (&action, &version) {
            (UpdateAction::Keep, _) | (UpdateAction::Delete, None) => return Ok(()),
            (UpdateAction::Write(bytes), Some(v)) => (
                &self.sql.update_contact,
                [&business as &(dyn ToSql + Sync), &contact, bytes, v].to_vec(),
            ),
            (UpdateAction::Write(bytes), None) => (
                &self.sql.insert_contact,
                [&business as &(dyn ToSql + Sync), &contact, bytes].to_vec(),
            ),
            (UpdateAction::Delete, Some(v)) => (
                &self.sql.delete_contact,
                [&business as &(dyn ToSql + Sync), &contact, v].to_vec(),
            ),
        };
        let statement = client.prepare_cached(sql).await.map_err(&read_failed)?;
        match client.execute(&statement, &written).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(Attempt::Again(None)),
            Err(e) => Err(Attempt::Fail(self.query_error("update", record(), e, true))),
        }
    }

    pub(crate) async fn try_update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), Attempt> {
        let b = business.as_str();
        let record = || Some(RecordKey::Sender(business.clone()));
        let client = self
            .client("update_sender", record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let read_failed = self.read_failed("update_sender", record);
        let load = client
            .prepare_cached(&self.sql.load_sender)
            .await
            .map_err(&read_failed)?;
        let row = client.query_opt(&load, &[&b]).await.map_err(&read_failed)?;
        let current: Option<&[u8]> = row.as_ref().map(|r| r.get(0));
        let version: Option<i64> = row.as_ref().map(|r| r.get(1));
        let action = update(current).map_err(Attempt::Fail)?;
        let (sql, params) = match (&action, &version) {
            (UpdateAction::Keep, _) | (UpdateAction::Delete, None) => return Ok(()),
            (UpdateAction::Write(bytes), Some(v)) => (
                &self.sql.update_sender,
                [&b as &(dyn ToSql + Sync), bytes, v].to_vec(),
            ),
            (UpdateAction::Write(bytes), None) => (
                &self.sql.insert_sender,
                [&b as &(dyn ToSql + Sync), bytes].to_vec(),
            ),
            (UpdateAction::Delete, Some(v)) => (
                &self.sql.delete_sender,
                [&b as &(dyn ToSql + Sync), v].to_vec(),
            ),
        };
        let statement = client.prepare_cached(sql).await.map_err(&read_failed)?;
        match client.execute(&statement, &params).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(Attempt::Again(None)),
            Err(e) => Err(Attempt::Fail(self.query_error(
                "update_sender",
                record(),
                e,
                true,
            ))),
        }
    }
}
