//! The conformance suite on the in-memory store.

mod conformance;

async fn make_store() -> (verrou::store::MemoryStore, ()) {
    (verrou::store::MemoryStore::new(), ())
}

store_conformance!(make_store);
