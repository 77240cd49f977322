//! The example server's own data, in SQLite: one Patient per owner, Observations per owner, and
//! which UMA resource id Custodia gave each (owner, FHIR type). PATs are not stored here: they live
//! in the SDK's in-memory PAT store, so no bearer credential sits on disk in plain text (an owner
//! reconnects after a restart).

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::{BigInt, Text};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("blocking task: {0}")]
    Task(String),
}

#[derive(Debug)]
struct Pragmas;
impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, c: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS patients (owner TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS observations (
    id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS observations_owner ON observations(owner);
CREATE TABLE IF NOT EXISTS uma_resources (
    owner TEXT NOT NULL, fhir_type TEXT NOT NULL, resource_id TEXT NOT NULL,
    PRIMARY KEY (owner, fhir_type));
";

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct OwnerBody {
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = Text)]
    body: String,
}

/// The example's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<SqliteConnection>>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let pool = Pool::builder()
            .max_size(4)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(Pragmas))
            .build(ConnectionManager::new(path.display().to_string()))
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let mut c = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
        c.batch_execute(SCHEMA)?;
        Ok(Store { pool })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, diesel::result::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
            f(&mut c).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The owner's Patient resource (JSON text).
    pub async fn patient(&self, owner: &str) -> Result<Option<String>, StoreError> {
        let owner = owner.to_string();
        self.run(move |c| {
            diesel::sql_query("SELECT body AS v FROM patients WHERE owner = ?")
                .bind::<Text, _>(owner)
                .get_result::<TextRow>(c)
                .optional()
                .map(|r| r.map(|r| r.v))
        })
        .await
    }

    /// Create the owner's Patient if missing.
    pub async fn ensure_patient(&self, owner: &str, body: String) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.run(move |c| {
            diesel::sql_query(
                "INSERT INTO patients (owner, body) VALUES (?, ?) ON CONFLICT (owner) DO NOTHING",
            )
            .bind::<Text, _>(owner)
            .bind::<Text, _>(body)
            .execute(c)
            .map(|_| ())
        })
        .await
    }

    pub async fn put_patient(&self, owner: &str, body: String) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.run(move |c| {
            diesel::sql_query("UPDATE patients SET body = ? WHERE owner = ?")
                .bind::<Text, _>(body)
                .bind::<Text, _>(owner)
                .execute(c)
                .map(|_| ())
        })
        .await
    }

    pub async fn add_observation(
        &self,
        id: &str,
        owner: &str,
        body: String,
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.run(move |c| {
            diesel::sql_query(
                "INSERT INTO observations (id, owner, body, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind::<Text, _>(id)
            .bind::<Text, _>(owner)
            .bind::<Text, _>(body)
            .bind::<BigInt, _>(now)
            .execute(c)
            .map(|_| ())
        })
        .await
    }

    /// An Observation and its owner.
    pub async fn observation(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            diesel::sql_query("SELECT owner, body FROM observations WHERE id = ?")
                .bind::<Text, _>(id)
                .get_result::<OwnerBody>(c)
                .optional()
                .map(|r| r.map(|r| (r.owner, r.body)))
        })
        .await
    }

    pub async fn observations_of(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let owner = owner.to_string();
        self.run(move |c| {
            diesel::sql_query(
                "SELECT body AS v FROM observations WHERE owner = ? ORDER BY created_at, id",
            )
            .bind::<Text, _>(owner)
            .load::<TextRow>(c)
            .map(|rows| rows.into_iter().map(|r| r.v).collect())
        })
        .await
    }

    /// The UMA resource id registered for (owner, FHIR type).
    pub async fn resource_id(
        &self,
        owner: &str,
        fhir_type: &str,
    ) -> Result<Option<String>, StoreError> {
        let (owner, t) = (owner.to_string(), fhir_type.to_string());
        self.run(move |c| {
            diesel::sql_query(
                "SELECT resource_id AS v FROM uma_resources WHERE owner = ? AND fhir_type = ?",
            )
            .bind::<Text, _>(owner)
            .bind::<Text, _>(t)
            .get_result::<TextRow>(c)
            .optional()
            .map(|r| r.map(|r| r.v))
        })
        .await
    }

    pub async fn set_resource_id(
        &self,
        owner: &str,
        fhir_type: &str,
        resource_id: &str,
    ) -> Result<(), StoreError> {
        let (owner, t, r) = (
            owner.to_string(),
            fhir_type.to_string(),
            resource_id.to_string(),
        );
        self.run(move |c| {
            diesel::sql_query(
                "INSERT INTO uma_resources (owner, fhir_type, resource_id) VALUES (?, ?, ?) \
                 ON CONFLICT (owner, fhir_type) DO UPDATE SET resource_id = excluded.resource_id",
            )
            .bind::<Text, _>(owner)
            .bind::<Text, _>(t)
            .bind::<Text, _>(r)
            .execute(c)
            .map(|_| ())
        })
        .await
    }
}
