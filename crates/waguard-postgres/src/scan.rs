//! Export: contact records in pages, in key order.

use std::time::Duration;

use waguard::StoreError;

use crate::{error, PostgresStore, READ_RETRIES, SCAN_PAGE};

impl PostgresStore {
    pub(crate) async fn scan_page(
        &self,
        after: Option<&(String, String)>,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let collect = |rows: Vec<tokio_postgres::Row>| {
            rows.into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect::<Vec<_>>()
        };
        let mut tries = 0;
        loop {
            let client = self.client("scan", None).await?;
            let result = match after {
                None => match client.prepare_cached(&self.sql.scan_first).await {
                    Ok(s) => client.query(&s, &[&SCAN_PAGE]).await,
                    Err(e) => Err(e),
                },
                Some((b, c)) => match client.prepare_cached(&self.sql.scan_next).await {
                    Ok(s) => client.query(&s, &[b, c, &SCAN_PAGE]).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(rows) => return Ok(collect(rows)),
                Err(e) if error::is_connection_error(&e) && tries < READ_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 << tries)).await;
                }
                Err(e) => return Err(self.query_error("scan", None, e, false)),
            }
        }
    }
}
