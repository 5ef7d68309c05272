//! `Store` for `Arc<T>` and `Box<T>` of a store: every method forwarded, none left to the
//! trait's defaults (a default would quietly refuse what the store inside can do).

use async_trait::async_trait;

use super::{
    Batch, ContactRegistryUpdate, ContactUpdate, ReadFn, Records, RegistryKey, RegistryReadFn,
    ScanStream, SenderUpdate, Store, StoreError,
};
use crate::{BusinessId, ContactKey};

macro_rules! forward_store {
    ($($ptr:ident)::+) => {
        #[async_trait]
        impl<T: Store + ?Sized> Store for $($ptr)::+<T> {
            async fn update(
                &self,
                key: &ContactKey,
                update: &mut ContactUpdate<'_>,
            ) -> Result<(), StoreError> {
                (**self).update(key, update).await
            }
            async fn update_sender(
                &self,
                business: &BusinessId,
                update: &mut SenderUpdate<'_>,
            ) -> Result<(), StoreError> {
                (**self).update_sender(business, update).await
            }
            async fn load(&self, key: &ContactKey) -> Result<Records, StoreError> {
                (**self).load(key).await
            }
            async fn load_with(
                &self,
                key: &ContactKey,
                read: &mut ReadFn<'_>,
            ) -> Result<(), StoreError> {
                (**self).load_with(key, read).await
            }
            fn load_now(
                &self,
                key: &ContactKey,
                read: &mut ReadFn<'_>,
            ) -> Option<Result<(), StoreError>> {
                (**self).load_now(key, read)
            }
            async fn load_sender(
                &self,
                business: &BusinessId,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).load_sender(business).await
            }
            async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
                (**self).remove(key).await
            }
            fn scan(&self) -> ScanStream<'_> {
                (**self).scan()
            }
            async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
                (**self).all_senders().await
            }
            async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
                (**self).apply_batch(batch).await
            }
            async fn flush(&self) -> Result<(), StoreError> {
                (**self).flush().await
            }
            async fn update_registry(
                &self,
                key: &RegistryKey,
                update: &mut SenderUpdate<'_>,
            ) -> Result<(), StoreError> {
                (**self).update_registry(key, update).await
            }
            async fn load_registry(
                &self,
                key: &RegistryKey,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).load_registry(key).await
            }
            async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                (**self).registry_records().await
            }
            async fn load_registries(
                &self,
                keys: &[RegistryKey],
            ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
                (**self).load_registries(keys).await
            }
            async fn load_with_registries(
                &self,
                key: &ContactKey,
                keys: &[RegistryKey],
                read: &mut RegistryReadFn<'_>,
            ) -> Result<(), StoreError> {
                (**self).load_with_registries(key, keys, read).await
            }
            async fn update_with_registry(
                &self,
                keys: &[ContactKey],
                registry: &RegistryKey,
                update: &mut ContactRegistryUpdate<'_>,
            ) -> Result<(), StoreError> {
                (**self).update_with_registry(keys, registry, update).await
            }
        }
    };
}

forward_store!(std::sync::Arc);
forward_store!(Box);
