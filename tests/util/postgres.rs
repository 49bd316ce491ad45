//! A PostgreSQL database of its own for one test: created on the server the development
//! and CI machines run (`AGENTOS_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the test ends. A server that
//! cannot be reached fails the test, saying so: these tests are never skipped.

use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("AGENTOS_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// One test's database.
pub struct TestDb {
    pub url: String,
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn admin<T>(f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = admin_url();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {url} ({e}); the PostgreSQL tests need it \
                     (set AGENTOS_TEST_POSTGRES to point elsewhere)"
                )
            });
        tokio::spawn(connection);
        f(&client).await
    })
}

impl TestDb {
    pub fn create() -> TestDb {
        let name = format!(
            "agentos_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        admin(async |c| {
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
        });
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(at) if at > "postgres://".len() => format!("{}/{name}", &base[..at]),
            _ => format!("{base}/{name}"),
        };
        TestDb { url, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        admin(async |c| {
            let _ = c
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}
