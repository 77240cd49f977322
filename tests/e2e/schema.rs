//! Both migration folders produce one logical schema: the same tables, columns, nullability and
//! portable types (design "Storage").

use std::collections::BTreeMap;

use custodia_server::config::DatabaseUrl;
use custodia_server::store::Store;
use custodia_tests::pg_admin_url;
use diesel::prelude::*;

type Schema = BTreeMap<String, BTreeMap<String, (String, bool)>>;

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    c: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    ty: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
}

fn normalise(ty: &str) -> String {
    match ty.to_ascii_lowercase().as_str() {
        "text" | "character varying" => "text".into(),
        "bigint" => "bigint".into(),
        "integer" | "int" => "integer".into(),
        "boolean" => "boolean".into(),
        other => other.into(),
    }
}

fn collect(rows: Vec<Col>) -> Schema {
    let mut s = Schema::new();
    for r in rows {
        if r.t.starts_with("__diesel") || r.t.starts_with("sqlite_") {
            continue;
        }
        s.entry(r.t)
            .or_default()
            .insert(r.c, (normalise(&r.ty), r.nullable));
    }
    s
}

mod migrations_match {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sqlite = Store::open(&DatabaseUrl::Sqlite(dir.path().join("s.db")), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        sqlite.migrate().unwrap_or_else(|e| panic!("{e}"));
        let srv = custodia_tests::TestServer::start(custodia_tests::Backend::Postgres).await;
        let _ = pg_admin_url();
        let lite = sqlite
            .run_sync(|c| {
                let q = "SELECT m.name AS t, p.name AS c, p.type AS ty, (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
                         FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'";
                Ok(custodia_server::with_conn!(c, c => diesel::sql_query(q).load::<Col>(c))?)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let pg = srv
            .store
            .run(|c| {
                let q = "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, (is_nullable = 'YES') AS nullable \
                         FROM information_schema.columns WHERE table_schema = 'public'";
                Ok(custodia_server::with_conn!(c, c => diesel::sql_query(q).load::<Col>(c))?)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (lite, pg) = (collect(lite), collect(pg));
        assert!(lite.len() >= 10, "tables: {:?}", lite.keys());
        assert_eq!(lite, pg);
    }
}
