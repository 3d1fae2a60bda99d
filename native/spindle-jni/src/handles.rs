//! Process-wide tables of native objects handed to the JVM as opaque ids, never raw pointers: a stale or
//! bogus id from the JVM is an error, not a crash. Each object has one owner, the table; removing its id
//! drops the table's reference, and the object closes when the last in-flight call using it returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use spindle_runtime::Error;

/// A table of objects of one kind.
pub struct Handles<T> {
    kind: &'static str,
    next: AtomicI64,
    map: Mutex<HashMap<i64, Arc<T>>>,
}

impl<T> Handles<T> {
    /// An empty table; `kind` names the objects in errors.
    pub fn new(kind: &'static str) -> Self {
        Handles {
            kind,
            next: AtomicI64::new(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<T>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value` and returns its id (never 0).
    pub fn insert(&self, value: T) -> i64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.map().insert(id, Arc::new(value));
        id
    }

    /// The object behind `id`.
    pub fn get(&self, id: i64) -> Result<Arc<T>, Error> {
        self.map()
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::Native(format!("unknown {} handle {id}", self.kind)))
    }

    /// Forgets `id`; unknown ids (0, already closed) are ignored so that close is idempotent.
    pub fn remove(&self, id: i64) -> Option<Arc<T>> {
        self.map().remove(&id)
    }
}
