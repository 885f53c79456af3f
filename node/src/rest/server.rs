//! The REST API's HTTP/1.1 server on the JobManager node: hyper's server, driven by smol.
//!
//! hyper does the HTTP: parsing (a malformed request gets 400 and a closed connection from hyper
//! itself), keep-alive, `Expect: 100-continue`, and the head limits and head timeout set from
//! [`super`]'s constants. This file adds what hyper leaves to its user: a bound on connections
//! (an accepted connection holds one of [`CONNECTIONS_MAX`] places; the accept loop waits for a
//! free one), a bound and a deadline on the body, a lifetime per connection, and the handler,
//! which routes with [`super::router`], asks the JobManager task through its
//! [`JobManagerHandle`] and answers JSON.
//!
//! The server is not written against the [`Runtime`](crate::net::Runtime) seam: HTTP is for
//! people and programs outside the cluster, so the simulation has no use for it, and the seam
//! carries frames, not byte streams.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use rivulet_core::ids::JobId;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo, TaskManagerInfo};
use serde::Serialize;
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::net::{TcpListener, TcpStream};
use smol::Timer;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::api::{
    ErrorBody, JobDetails, JobList, JobRef, JobSummary, Overview, SavepointDetails, SavepointRef,
    SavepointRequest, TaskManagerDetails, TaskManagerList,
};
use super::router::{self, Route, RouteError};
use super::{
    within, BODY_BYTES_MAX, BODY_READ_TIMEOUT, CONNECTIONS_MAX, CONNECTION_LIFETIME_MAX, HEADERS_MAX,
    HEAD_BYTES_MAX, HEAD_READ_TIMEOUT, READ_BUFFER_BYTES_MAX, SHUTDOWN_GRACE,
};
use crate::cluster::jobmanager::JobManagerHandle;
use crate::net::{Runtime, SmolRuntime};

/// How long the accept loop pauses after a failed accept (out of file descriptors, say) before
/// it tries again, so that a persistent failure does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// A bound REST listener, not yet serving.
pub struct RestServer {
    listener: TcpListener,
    address: String,
}

impl RestServer {
    /// Listens on `address` (`host:port`; port 0 picks a free one).
    pub async fn bind(address: &str) -> io::Result<RestServer> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?.to_string();
        Ok(RestServer { listener, address })
    }

    /// The bound address, with the port resolved.
    pub fn local_address(&self) -> &str {
        &self.address
    }

    /// Serves requests for ever, each connection in a task of `rt`, answering through `jm`.
    /// Once the JobManager has stopped, requests get 503.
    pub async fn serve(self, rt: SmolRuntime, jm: JobManagerHandle) {
        tracing::info!(address = %self.address, "REST API listening");
        let places = Arc::new(Semaphore::new(CONNECTIONS_MAX));
        loop {
            let place = places.acquire_arc().await;
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    rt.spawn("rest-connection", serve_connection(stream, peer, jm.clone(), place))
                }
                Err(error) => {
                    tracing::warn!(%error, "REST accept failed");
                    Timer::after(ACCEPT_RETRY_DELAY).await;
                }
            }
        }
    }
}

/// Serves one connection for at most [`CONNECTION_LIFETIME_MAX`]; `_place` is given back when
/// it ends.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    jm: JobManagerHandle,
    _place: SemaphoreGuardArc,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder
        .timer(SmolTimer::new())
        .header_read_timeout(HEAD_READ_TIMEOUT)
        .max_buf_size(READ_BUFFER_BYTES_MAX)
        .max_header_size(HEAD_BYTES_MAX)
        .max_headers(HEADERS_MAX);
    let service = service_fn(move |request| {
        let jm = jm.clone();
        async move { Ok::<_, Infallible>(answer(request, &jm).await) }
    });
    let mut connection = pin!(builder.serve_connection(FuturesIo::new(stream), service));
    let result = match within(CONNECTION_LIFETIME_MAX, connection.as_mut()).await {
        Some(result) => result,
        None => {
            // Finish the answer in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            match within(SHUTDOWN_GRACE, connection.as_mut()).await {
                Some(result) => result,
                None => {
                    tracing::debug!(%peer, "REST connection dropped: it outlived its shutdown grace");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        // Malformed requests, timeouts and resets land here; hyper has answered what it could.
        tracing::debug!(%peer, %error, "REST connection ended");
    }
}

/// An answer other than success: its status and the message of its `{"error": ...}` body.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into(), allow: None }
    }
}

impl From<RouteError> for Refusal {
    fn from(error: RouteError) -> Refusal {
        let status = StatusCode::from_u16(error.status()).expect("the router's statuses are valid");
        let allow = match &error {
            RouteError::MethodNotAllowed { allowed, .. } => Some(*allowed),
            _ => None,
        };
        Refusal { status, message: error.to_string(), allow }
    }
}

/// The answer to one request.
async fn answer(request: Request<Incoming>, jm: &JobManagerHandle) -> Response<Full<Bytes>> {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = match router::route(method.as_str(), &path, request.uri().query()) {
        Ok(route) => serve(route, request, jm).await,
        Err(error) => Err(Refusal::from(error)),
    };
    let response = response.unwrap_or_else(|refusal| {
        let mut response = json(refusal.status, &ErrorBody { error: refusal.message });
        if let Some(allow) = refusal.allow {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    });
    tracing::debug!(%method, %path, status = response.status().as_u16(), "REST request");
    response
}

async fn serve(
    route: Route,
    request: Request<Incoming>,
    jm: &JobManagerHandle,
) -> Result<Response<Full<Bytes>>, Refusal> {
    match route {
        Route::Overview => {
            // Two requests, so not one instant's picture; close enough for an overview.
            let jobs = jobs(jm).await?;
            let task_managers = task_managers(jm).await?;
            Ok(json(StatusCode::OK, &Overview::new(&jobs, &task_managers)))
        }
        Route::ListJobs => {
            let jobs = jobs(jm).await?.iter().map(JobSummary::new).collect();
            Ok(json(StatusCode::OK, &JobList { jobs }))
        }
        Route::TaskManagers => {
            let taskmanagers = task_managers(jm).await?.iter().map(TaskManagerDetails::new).collect();
            Ok(json(StatusCode::OK, &TaskManagerList { taskmanagers }))
        }
        Route::Job(job) => match ask(jm, ClientRequest::JobStatus { job }).await? {
            ClientResponse::Job { job } => Ok(json(StatusCode::OK, &JobDetails::new(&job))),
            ClientResponse::UnknownJob { job } => Err(no_such_job(job)),
            other => Err(unexpected(&other)),
        },
        Route::CancelJob(job) => match ask(jm, ClientRequest::Cancel { job }).await? {
            ClientResponse::CancelRequested { job } => {
                Ok(json(StatusCode::ACCEPTED, &JobRef { id: job.to_string() }))
            }
            ClientResponse::UnknownJob { job } => Err(not_running(jm, job).await),
            other => Err(unexpected(&other)),
        },
        Route::StopJob(job) => match ask(jm, ClientRequest::Stop { job }).await? {
            ClientResponse::StopRequested { job } => {
                Ok(json(StatusCode::ACCEPTED, &JobRef { id: job.to_string() }))
            }
            ClientResponse::UnknownJob { job } => Err(not_running(jm, job).await),
            other => Err(unexpected(&other)),
        },
        Route::TriggerSavepoint(job) => {
            let body = read_body(request.into_body(), "the savepoint request").await?;
            let asked: SavepointRequest = if body.iter().all(u8::is_ascii_whitespace) {
                SavepointRequest::default()
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    Refusal::new(StatusCode::BAD_REQUEST, format!("the savepoint request is not valid: {e}"))
                })?
            };
            let request = ClientRequest::Savepoint { job, directory: asked.directory, stop: asked.stop };
            match ask(jm, request).await? {
                ClientResponse::SavepointTriggered { job, request } => {
                    let mut response =
                        json(StatusCode::ACCEPTED, &SavepointRef { id: job.to_string(), request });
                    let location = HeaderValue::from_str(&format!("/jobs/{job}/savepoints/{request}"))
                        .expect("an id is ASCII");
                    response.headers_mut().insert(LOCATION, location);
                    Ok(response)
                }
                ClientResponse::SavepointRefused { error, .. } => {
                    Err(Refusal::new(StatusCode::CONFLICT, error))
                }
                ClientResponse::UnknownJob { job } => Err(not_running(jm, job).await),
                other => Err(unexpected(&other)),
            }
        }
        Route::Savepoint(job, request) => match ask(jm, ClientRequest::JobStatus { job }).await? {
            ClientResponse::Job { job: info } => {
                match info.savepoints.iter().find(|s| s.request == request) {
                    Some(savepoint) => Ok(json(StatusCode::OK, &SavepointDetails::new(savepoint))),
                    None => Err(Refusal::new(
                        StatusCode::NOT_FOUND,
                        format!(
                            "{job} has no savepoint request {request} (the JobManager keeps its recent ones)"
                        ),
                    )),
                }
            }
            ClientResponse::UnknownJob { job } => Err(no_such_job(job)),
            other => Err(unexpected(&other)),
        },
        Route::SubmitJob { parallelism, savepoint } => {
            let job_file = read_job_file(request.into_body()).await?;
            let request = ClientRequest::Submit { job_file, parallelism, from_savepoint: savepoint };
            match ask(jm, request).await? {
                ClientResponse::Submitted { job } => {
                    let mut response = json(StatusCode::CREATED, &JobRef { id: job.to_string() });
                    let location = HeaderValue::from_str(&format!("/jobs/{job}")).expect("an id is ASCII");
                    response.headers_mut().insert(LOCATION, location);
                    Ok(response)
                }
                ClientResponse::SubmitRefused { error } => Err(Refusal::new(StatusCode::BAD_REQUEST, error)),
                other => Err(unexpected(&other)),
            }
        }
    }
}

/// Unknown to cancel or stop: never submitted (404), or already ended and still in the history
/// (409).
async fn not_running(jm: &JobManagerHandle, job: JobId) -> Refusal {
    match ask(jm, ClientRequest::JobStatus { job }).await {
        Ok(ClientResponse::Job { job: info }) => {
            Refusal::new(StatusCode::CONFLICT, format!("{job} is not running: it is {}", info.state))
        }
        Ok(_) => no_such_job(job),
        Err(refusal) => refusal,
    }
}

/// The body of `POST /jobs`: a job file's text, at most [`BODY_BYTES_MAX`] bytes, arriving within
/// [`BODY_READ_TIMEOUT`].
async fn read_job_file(body: Incoming) -> Result<String, Refusal> {
    let bytes = read_body(body, "the job file").await?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not UTF-8 text (at byte {at})"))
    })?;
    if text.trim().is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "the body is empty: POST /jobs takes a job file's TOML text",
        ));
    }
    Ok(text)
}

/// A request's body, at most [`BODY_BYTES_MAX`] bytes arriving within [`BODY_READ_TIMEOUT`]; `what`
/// names it in errors.
async fn read_body(body: Incoming, what: &str) -> Result<Vec<u8>, Refusal> {
    let too_large = |message: String| Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, message);
    // A declared length is refused before a byte of the body is read.
    let declared = body.size_hint().lower();
    if declared > BODY_BYTES_MAX as u64 {
        return Err(too_large(format!("{what} has {declared} bytes; at most {BODY_BYTES_MAX} are accepted")));
    }
    match within(BODY_READ_TIMEOUT, Limited::new(body, BODY_BYTES_MAX).collect()).await {
        None => {
            let message = format!("the body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs());
            Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, message))
        }
        Some(Err(error)) if error.is::<LengthLimitError>() => Err(too_large("more than that".to_owned())),
        Some(Err(error)) => {
            Err(Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {error}")))
        }
        Some(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

async fn ask(jm: &JobManagerHandle, request: ClientRequest) -> Result<ClientResponse, Refusal> {
    jm.request(request)
        .await
        .map_err(|stopped| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, stopped.to_string()))
}

async fn jobs(jm: &JobManagerHandle) -> Result<Vec<JobInfo>, Refusal> {
    match ask(jm, ClientRequest::ListJobs).await? {
        ClientResponse::Jobs { jobs } => Ok(jobs),
        other => Err(unexpected(&other)),
    }
}

async fn task_managers(jm: &JobManagerHandle) -> Result<Vec<TaskManagerInfo>, Refusal> {
    match ask(jm, ClientRequest::TaskManagers).await? {
        ClientResponse::TaskManagers { task_managers } => Ok(task_managers),
        other => Err(unexpected(&other)),
    }
}

fn no_such_job(job: JobId) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, format!("no job {job}"))
}

/// The JobManager answered a request with the response to another kind: a bug.
fn unexpected(response: &ClientResponse) -> Refusal {
    tracing::error!(?response, "the JobManager answered a REST request unexpectedly");
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "the JobManager answered unexpectedly")
}

fn json(status: StatusCode, document: &impl Serialize) -> Response<Full<Bytes>> {
    let body =
        serde_json::to_vec(document).expect("the API's documents have string keys and no failing fields");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
