//! The JobManager's REST API: JSON over HTTP/1.1, in the spirit of Flink's, for the CLI's client
//! commands, scripts and dashboards.
//!
//! - [`api`]: the JSON documents the routes exchange, and how they are made from the client
//!   protocol's answers (`docs/rest.md` is their reference);
//! - [`router`]: which route a method, path and query name, or why none does; pure, so every
//!   refusal is unit-tested;
//! - [`server`]: the HTTP server on the JobManager node (hyper on smol);
//! - [`client`]: the HTTP client the CLI's `submit`, `list`, `status`, `cancel` and
//!   `taskmanagers` use.
//!
//! The server owns no state and answers nothing itself: it turns each request into a
//! [`ClientRequest`](rivulet_core::protocol::client::ClientRequest) for the JobManager task
//! through a [`JobManagerHandle`](crate::cluster::jobmanager::JobManagerHandle), exactly as a
//! framed client's request is handled, and turns the answer into JSON. So the REST API can never
//! see or do anything the client protocol cannot, and the role stays single-threaded.
//!
//! HTTP is the one place the node faces arbitrary programs, so everything a peer controls is
//! bounded by the constants below: connections, the request head, the body, and the time each
//! may take. Hostile input gets a 4xx answer or a closed connection, never a panic.

pub mod api;
pub mod client;
pub mod router;
pub mod server;

use std::future::Future;
use std::time::Duration;

use rivulet_core::limits::JOB_FILE_BYTES_MAX;

/// Where the REST API listens unless configured otherwise: Flink's port, on loopback only, since
/// the API has no authentication (bind a routable address deliberately, behind a proxy).
pub const REST_LISTEN_DEFAULT: &str = "127.0.0.1:8081";

/// Connections served at once. Further clients wait in the listen backlog until one closes;
/// the timeouts below make sure one does.
pub const CONNECTIONS_MAX: usize = 64;

/// Bytes of a request's head (request line and headers); a larger head is answered with 431.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;

/// Headers of one request.
pub const HEADERS_MAX: usize = 64;

/// Bytes hyper buffers from one connection at most (its read buffer). It must hold a maximal
/// head; bodies stream through it in pieces.
pub const READ_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Bytes of a request body: the only body is a job file (`POST /jobs`); a larger one gets 413.
pub const BODY_BYTES_MAX: usize = JOB_FILE_BYTES_MAX;

/// How long a request's head may take to arrive, counted from when the server starts waiting for
/// it, so it also closes a kept-alive connection that stays idle this long.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request's body may take to arrive once its head has; then 408. A maximal job file
/// at 1 Mbit/s, a slow edge link, takes about 8 s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one connection is served. Then it is shut down gracefully (an answer being written is
/// finished, for up to [`SHUTDOWN_GRACE`]), so that no peer holds one of the
/// [`CONNECTIONS_MAX`] places forever, e.g. by never reading its answers. Clients reconnect.
pub const CONNECTION_LIFETIME_MAX: Duration = Duration::from_secs(300);

/// How long a connection being shut down may take to finish its answer before it is dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Bytes of a response body the client accepts. The largest answer is a job's details: with
/// thousands of subtasks that is a few megabytes of JSON.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// How long the client waits for a whole exchange (connect, request, response).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

// hyper refuses read buffers under 8 KiB; the largest head must fit in the buffer.
const _: () = assert!(READ_BUFFER_BYTES_MAX >= 8192 && HEAD_BYTES_MAX <= READ_BUFFER_BYTES_MAX);
const _: () = assert!(CONNECTIONS_MAX >= 1 && HEADERS_MAX >= 8);
// A slow body must not outlive its connection's lifetime by the rules alone.
const _: () =
    assert!(HEAD_READ_TIMEOUT.as_secs() + BODY_READ_TIMEOUT.as_secs() < CONNECTION_LIFETIME_MAX.as_secs());

/// `work`'s output, or `None` if `limit` passes first.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(work.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}
