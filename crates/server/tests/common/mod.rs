//! Starts the real server on a free port over a real store (SQLite in a temporary directory, or
//! a fresh PostgreSQL database) and speaks HTTP to it.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;

pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub struct TestServer {
    pub base: String,
    pub client: Client,
    pub store: Arc<dyn store::Store>,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn start(backend: Backend) -> TestServer {
    start_with(backend, server::idp::IdentityConfig::default()).await
}

pub async fn start_with(backend: Backend, identity: server::idp::IdentityConfig) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(store::testing::fresh_postgres_url().await),
    };
    let store = store::open(url.as_deref(), dir.path()).await.expect("store opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let state =
        server::AppState::new(store.clone(), server::Config { base_url: None, max_body_bytes: MAX_BODY, identity });
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    TestServer { base: format!("http://{addr}/fhir"), client: Client::new(), store, _dir: dir }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Asserts an OperationOutcome with an error issue whose expression contains `expr`.
    pub fn assert_outcome_at(&self, expr: &str) {
        let body = self.json();
        assert_eq!(body["resourceType"], "OperationOutcome", "{}", self.text);
        let found = body["issue"].as_array().into_iter().flatten().any(|i| {
            i["expression"].as_array().into_iter().flatten().any(|e| e.as_str().is_some_and(|e| e.contains(expr)))
        });
        assert!(found, "no issue at {expr}: {}", self.text);
    }
}

impl TestServer {
    /// The URL of a path below the base; an absolute URL (a link the server wrote) as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        if path.is_empty() { self.base.clone() } else { format!("{}/{}", self.base, path.trim_start_matches('/')) }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.header("content-type", "application/fhir+json").body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let req = self.client.request(method, self.url(path)).header("content-type", content_type).body(body);
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    /// Creates a resource and returns its id.
    pub async fn create(&self, body: &Value) -> String {
        let rt = body["resourceType"].as_str().expect("resourceType");
        let r = self.post(rt, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()["id"].as_str().expect("id").to_owned()
    }
}

async fn reply(response: Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply { status, headers, text }
}

/// Runs each named async test function against both backends.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::start(super::common::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::start(super::common::Backend::Postgres).await).await;
                }
            )*
        }
    };
}
