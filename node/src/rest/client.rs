//! The REST API's client, as the CLI's client commands use it: one connection per exchange,
//! hyper's HTTP/1.1 client on a smol TCP stream, the whole exchange bounded in time and the
//! answer bounded in size.
//!
//! It returns the status and the body whatever the status is: what a 404 or a 409 means is the
//! caller's business (the CLI maps them to its messages and exit codes).

use std::fmt;
use std::io;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use serde::de::DeserializeOwned;
use smol::net::TcpStream;
use smol_hyper::rt::FuturesIo;

use super::api::ErrorBody;
use super::{within, CLIENT_TIMEOUT, RESPONSE_BYTES_MAX};

/// An answer of the REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as the JSON document `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RestClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|error| RestClientError::BadAnswer { status: self.status, error: error.to_string() })
    }

    /// The message of an error answer: its `error` field, or the body as text if it has none.
    pub fn error_message(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => body.error,
            Err(_) => String::from_utf8_lossy(&self.body).trim().to_owned(),
        }
    }
}

/// Why an exchange got no answer.
#[derive(Debug)]
pub enum RestClientError {
    Connect {
        address: String,
        error: io::Error,
    },
    /// The request could not be made (an address that is no valid `Host`, say).
    Request {
        error: String,
    },
    /// The connection broke or the answer was not HTTP.
    Http {
        address: String,
        error: hyper::Error,
    },
    /// The answer's body was too large or broke off.
    Body {
        address: String,
        error: String,
    },
    /// The answer's body is not the JSON expected.
    BadAnswer {
        status: u16,
        error: String,
    },
    TimedOut {
        address: String,
    },
}

impl fmt::Display for RestClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestClientError::Connect { address, error } => {
                write!(f, "cannot connect to the JobManager's REST API at {address}: {error}")
            }
            RestClientError::Request { error } => write!(f, "cannot make the request: {error}"),
            RestClientError::Http { address, error } => {
                write!(f, "the exchange with the REST API at {address} failed: {error}")
            }
            RestClientError::Body { address, error } => {
                write!(f, "cannot read the answer of the REST API at {address}: {error}")
            }
            RestClientError::BadAnswer { status, error } => {
                write!(f, "the REST API answered {status} with an unexpected body: {error}")
            }
            RestClientError::TimedOut { address } => {
                write!(f, "the REST API at {address} did not answer within {} s", CLIENT_TIMEOUT.as_secs())
            }
        }
    }
}

impl std::error::Error for RestClientError {}

/// Sends `method path_and_query` with `body` (a job file's text, or nothing) to the REST API at
/// `address` (`host:port`) and waits for the answer.
pub async fn request(
    address: &str,
    method: Method,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<Reply, RestClientError> {
    within(CLIENT_TIMEOUT, exchange(address, method, path_and_query, body))
        .await
        .unwrap_or_else(|| Err(RestClientError::TimedOut { address: address.to_owned() }))
}

async fn exchange(
    address: &str,
    method: Method,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<Reply, RestClientError> {
    let http = |error: hyper::Error| RestClientError::Http { address: address.to_owned(), error };
    let mut builder = Request::builder().method(method).uri(path_and_query).header(HOST, address);
    if !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, "application/toml");
    }
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| RestClientError::Request { error: error.to_string() })?;
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| RestClientError::Connect { address: address.to_owned(), error })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(FuturesIo::new(stream)).await.map_err(http)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body =
            Limited::new(response.into_body(), RESPONSE_BYTES_MAX).collect().await.map_err(|error| {
                RestClientError::Body { address: address.to_owned(), error: error.to_string() }
            })?;
        Ok(Reply { status, body: body.to_bytes().to_vec() })
    };
    // The connection's I/O runs in `connection`; it ends once the exchange has dropped `sender`,
    // or with the error that also fails the exchange. A clean end first changes nothing.
    let drive = async {
        match connection.await {
            Err(error) => Err(http(error)),
            Ok(()) => std::future::pending().await,
        }
    };
    smol::future::or(exchange, drive).await
}
