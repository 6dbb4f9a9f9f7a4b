//! The in-memory store keeps the same promises as Redis.
mod common;

use roomcast_cluster::MemoryStore;

#[tokio::test(start_paused = true)]
async fn memory_store_semantics() {
    let store = MemoryStore::new();
    common::store_semantics(&store, tokio::time::advance).await;
}
