//! The load and memory benches' HTTP client: JSON `POST`s to the portal's API over real TCP
//! connections, as a script would send them.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The password every bench account shares (one stored hash).
pub const PASSWORD: &str = "correct horse battery staple";

pub type Http = Client<HttpConnector, Full<Bytes>>;

/// A client with connection reuse.
pub fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `POST path` with a JSON `body` (and `cookie`): the status, and the first cookie set.
pub async fn post(
    http: &Http,
    address: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    body: String,
) -> (StatusCode, Option<String>) {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{address}{path}"))
        .header("x-portal-api", "1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = http
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    let _ = response.into_body().collect().await;
    (status, cookie)
}
