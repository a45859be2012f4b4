//! What every part of the server shares: settings, the pool, the clock, AWS, keys.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::auth::TokenAuthority;
use crate::aws::{Commands, DocumentStore, Fleet};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::Sealer;
use crate::db::{DbConnection, DbError, Pool};

#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub clock: Arc<dyn Clock>,
    pub sealer: Sealer,
    pub tokens: TokenAuthority,
    pub fleet: Arc<dyn Fleet>,
    pub commands: Arc<dyn Commands>,
    pub documents: Arc<dyn DocumentStore>,
    /// Wakes the local worker when a job was queued, so that grants start at once.
    pub worker_wake: Arc<Notify>,
}

impl Context {
    /// Runs blocking database work on the blocking thread pool.
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        match tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        {
            Ok(result) => result,
            Err(join) => Err(E::from(DbError::Task(join.to_string()))),
        }
    }
}
