//! Registry records (templates, rules T1-T3): one row per record in `registry`, keyed by the
//! record's storage key. Writes are rare, so an update is a plain transaction serialised per
//! key by a transaction-scoped advisory lock (which also covers a record not written yet).

use waguard::{RegistryKey, SenderUpdate, StoreError, UpdateAction};

use crate::error::PostgresError;
use crate::PostgresStore;

/// The advisory lock key of one registry record: a stable 64-bit FNV-1a hash of its key.
fn lock_key(key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "waguard registry ".bytes().chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

impl PostgresStore {
    pub(crate) async fn registry_update(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_registry";
        let k = key.storage_key();
        let q = format!("\"{}\"", self.schema());
        let mut client = self.client(OP, None).await?;
        let fail = |e, written| PostgresError::query(self.url(), e, written).into_store(OP, None);
        let tx = client.transaction().await.map_err(|e| fail(e, false))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(&k)])
            .await
            .map_err(|e| fail(e, false))?;
        let row = tx
            .query_opt(
                &format!("SELECT state FROM {q}.registry WHERE key = $1"),
                &[&k],
            )
            .await
            .map_err(|e| fail(e, false))?;
        let current: Option<Vec<u8>> = row.map(|r| r.get(0));
        match update(current.as_deref())? {
            UpdateAction::Keep => return Ok(()),
            UpdateAction::Write(bytes) => {
                tx.execute(
                    &format!(
                        "INSERT INTO {q}.registry (key, state) VALUES ($1, $2)
                         ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()"
                    ),
                    &[&k, &bytes],
                )
                .await
                .map_err(|e| fail(e, false))?;
            }
            UpdateAction::Delete => {
                tx.execute(&format!("DELETE FROM {q}.registry WHERE key = $1"), &[&k])
                    .await
                    .map_err(|e| fail(e, false))?;
            }
        }
        tx.commit().await.map_err(|e| fail(e, true))
    }

    /// Several records in one statement (a template decision's registry reads).
    pub(crate) async fn registry_load_many(
        &self,
        keys: &[RegistryKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        const OP: &str = "load_registry";
        let wanted: Vec<String> = keys.iter().map(RegistryKey::storage_key).collect();
        let q = format!("\"{}\"", self.schema());
        let client = self.client(OP, None).await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT key, state FROM {q}.registry WHERE key = ANY($1)"
            ))
            .await
            .map_err(|e| PostgresError::query(self.url(), e, false).into_store(OP, None))?;
        let rows = client
            .query(&statement, &[&wanted])
            .await
            .map_err(|e| PostgresError::query(self.url(), e, false).into_store(OP, None))?;
        let mut found: std::collections::HashMap<String, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(wanted.iter().map(|k| found.remove(k)).collect())
    }

    pub(crate) async fn registry_all(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        const OP: &str = "registry_records";
        let q = format!("\"{}\"", self.schema());
        let client = self.client(OP, None).await?;
        let rows = client
            .query(
                &format!("SELECT key, state FROM {q}.registry ORDER BY key"),
                &[],
            )
            .await
            .map_err(|e| PostgresError::query(self.url(), e, false).into_store(OP, None))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) async fn registry_load(
        &self,
        key: &RegistryKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "load_registry";
        let k = key.storage_key();
        let q = format!("\"{}\"", self.schema());
        let client = self.client(OP, None).await?;
        let row = client
            .query_opt(
                &format!("SELECT state FROM {q}.registry WHERE key = $1"),
                &[&k],
            )
            .await
            .map_err(|e| PostgresError::query(self.url(), e, false).into_store(OP, None))?;
        Ok(row.map(|r| r.get(0)))
    }
}
