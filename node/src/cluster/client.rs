//! A client of the JobManager over the framed client protocol: one connection, one request and
//! its response at a time. The simulator drives JobManagers with it; the CLI's client commands
//! use the REST API instead ([`crate::rest::client`]), which ends in the same requests.

use std::fmt;
use std::io;
use std::time::Duration;

use rivulet_core::ids::ClusterId;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse};
use rivulet_core::protocol::{Hello, PeerRole};

use crate::net::{handshake, recv_message, send_message, HandshakeFailure, Runtime};

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    Connect {
        address: String,
        error: io::Error,
    },
    Handshake {
        address: String,
        failure: HandshakeFailure,
    },
    Io(io::Error),
    /// The JobManager closed the connection without answering.
    NoResponse,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { address, error } => {
                write!(f, "cannot connect to the JobManager at {address}: {error}")
            }
            ClientError::Handshake { address, failure } => {
                write!(f, "the JobManager at {address} did not accept this client: {failure}")
            }
            ClientError::Io(error) => write!(f, "the connection to the JobManager failed: {error}"),
            ClientError::NoResponse => f.write_str("the JobManager closed the connection without answering"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to a JobManager.
pub struct Client<R: Runtime> {
    conn: R::Connection,
}

impl<R: Runtime> Client<R> {
    pub async fn connect(
        rt: &R,
        address: &str,
        cluster: ClusterId,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut conn = rt
            .connect(address)
            .await
            .map_err(|error| ClientError::Connect { address: address.to_owned(), error })?;
        let local = Hello::new(cluster, PeerRole::Client, "cli").expect("a valid node name");
        handshake(rt, &mut conn, local, timeout)
            .await
            .map_err(|failure| ClientError::Handshake { address: address.to_owned(), failure })?;
        Ok(Client { conn })
    }

    /// Sends `request` and waits for its response.
    pub async fn request(&mut self, request: &ClientRequest) -> Result<ClientResponse, ClientError> {
        send_message(&mut self.conn, request).await.map_err(ClientError::Io)?;
        recv_message(&mut self.conn).await.map_err(ClientError::Io)?.ok_or(ClientError::NoResponse)
    }
}
