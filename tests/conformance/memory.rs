//! The conformance suite on the in-memory store.

async fn make_store() -> (verrou::store::MemoryStore, ()) {
    (verrou::store::MemoryStore::new(), ())
}

store_conformance!(make_store);
