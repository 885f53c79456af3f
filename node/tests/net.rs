//! The network layer on loopback TCP: handshakes, messages both ways, and what hostile or broken
//! peers get.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::ids::{AttemptId, ClusterId, JobId, SlotIndex, TaskManagerId};
use rivulet_core::jobmanager::execution_state::ExecutionState;
use rivulet_core::jobmanager::resource_manager::TaskManagerRegistration;
use rivulet_core::limits::FRAME_BYTES_MAX;
use rivulet_core::protocol::messages::{
    Deployment, SubtaskLocation, TaskStateReport, ToJobManager, ToTaskManager,
};
use rivulet_core::protocol::{
    FrameError, HandshakeError, Hello, PeerRole, Remote, Verdict, PROTOCOL_VERSION,
};
use rivulet_node::net::{
    handshake, recv_message, send_message, FrameConnection, FrameListener, FrameReceiver, FrameSender,
    HandshakeFailure, Runtime, SmolConnection, SmolListener, SmolRuntime,
};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// Long enough never to fire on a healthy loopback handshake.
const TIMEOUT: Duration = Duration::from_secs(10);

fn hello(cluster: u64, role: PeerRole, node: &str) -> Hello {
    Hello::new(ClusterId(cluster), role, node).unwrap()
}

async fn listener(runtime: &SmolRuntime) -> (SmolListener, String) {
    let listener = runtime.listen("127.0.0.1:0").await.unwrap();
    let address = listener.local_address().unwrap();
    (listener, address)
}

/// Handshakes a client and the server's next accepted connection at the same time.
async fn connect_pair(
    runtime: &SmolRuntime,
    listener: &mut SmolListener,
    address: &str,
    server_hello: Hello,
    client_hello: Hello,
) -> ((SmolConnection, Result<Remote, HandshakeFailure>), (SmolConnection, Result<Remote, HandshakeFailure>))
{
    let server = async {
        let (mut conn, _peer) = listener.accept().await.unwrap();
        let result = handshake(runtime, &mut conn, server_hello, TIMEOUT).await;
        (conn, result)
    };
    let client = async {
        let mut conn = runtime.connect(address).await.unwrap();
        let result = handshake(runtime, &mut conn, client_hello, TIMEOUT).await;
        (conn, result)
    };
    smol::future::zip(server, client).await
}

fn registration() -> ToJobManager {
    ToJobManager::Register(TaskManagerRegistration {
        id: TaskManagerId(3),
        address: "127.0.0.1:6124".into(),
        slots: 2,
        labels: BTreeMap::from([("tier".to_owned(), "edge".to_owned())]),
        protocol_version: PROTOCOL_VERSION,
    })
}

#[test]
fn peers_handshake_and_exchange_messages_both_ways() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let ((mut jm, jm_result), (tm, tm_result)) = connect_pair(
            &runtime,
            &mut listener,
            &address,
            hello(4, PeerRole::JobManager, "jobmanager"),
            hello(4, PeerRole::TaskManager, "tm-3"),
        )
        .await;
        assert_eq!(jm_result.unwrap(), Remote { role: PeerRole::TaskManager, node: "tm-3".into() });
        assert_eq!(tm_result.unwrap(), Remote { role: PeerRole::JobManager, node: "jobmanager".into() });

        let (job, attempt) = (JobId(7), AttemptId(1));
        let to_jm = vec![
            registration(),
            ToJobManager::Heartbeat,
            ToJobManager::TaskState(TaskStateReport {
                job,
                attempt,
                subtask: 0,
                state: ExecutionState::Running,
                error: None,
                metrics: vec![(0, OperatorMetrics { records_in: 10, records_out: 9, ..Default::default() })],
            }),
        ];
        let to_tm = vec![
            ToTaskManager::Registered { heartbeat_interval_ms: 1000 },
            ToTaskManager::Deploy(Deployment {
                job,
                attempt,
                subtask: 0,
                slot: SlotIndex(1),
                job_file: "[[source]]\nname = \"numbers\"\n".into(),
                parallelism: Some(1),
                locations: vec![SubtaskLocation {
                    subtask: 0,
                    task_manager: TaskManagerId(3),
                    address: "127.0.0.1:6124".into(),
                }],
                restore_from: None,
            }),
            ToTaskManager::CancelAttempt { job, attempt },
        ];

        // The TaskManager reads and writes from two halves at once, as a driver would.
        let (mut tm_receiver, mut tm_sender) = tm.into_split();
        let tm_sends = async {
            for message in &to_jm {
                send_message(&mut tm_sender, message).await.unwrap();
            }
        };
        let tm_receives = async {
            let mut received = Vec::new();
            for _ in 0..to_tm.len() {
                received.push(recv_message::<_, ToTaskManager>(&mut tm_receiver).await.unwrap().unwrap());
            }
            received
        };
        let jm_side = async {
            for message in &to_tm {
                send_message(&mut jm, message).await.unwrap();
            }
            let mut received = Vec::new();
            for _ in 0..to_jm.len() {
                received.push(recv_message::<_, ToJobManager>(&mut jm).await.unwrap().unwrap());
            }
            received
        };
        let ((), (at_tm, at_jm)) = smol::future::zip(tm_sends, smol::future::zip(tm_receives, jm_side)).await;
        assert_eq!(at_tm, to_tm);
        assert_eq!(at_jm, to_jm);

        // A clean close: the JobManager reads the end of the stream, again and again.
        tm_sender.close().await.unwrap();
        assert!(recv_message::<_, ToJobManager>(&mut jm).await.unwrap().is_none());
        assert!(jm.recv().await.unwrap().is_none());
        // The other direction is still open until the JobManager closes it too.
        jm.close().await.unwrap();
        assert!(tm_receiver.recv().await.unwrap().is_none());
    });
}

#[test]
fn a_dropped_peer_is_a_clean_close() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let ((mut jm, jm_result), (tm, tm_result)) = connect_pair(
            &runtime,
            &mut listener,
            &address,
            hello(4, PeerRole::JobManager, "jobmanager"),
            hello(4, PeerRole::TaskManager, "tm-3"),
        )
        .await;
        jm_result.unwrap();
        tm_result.unwrap();
        drop(tm);
        assert!(jm.recv().await.unwrap().is_none());
    });
}

#[test]
fn a_wrong_cluster_is_refused_by_both_sides_with_the_same_reasons() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let ((_jm, jm_result), (_tm, tm_result)) = connect_pair(
            &runtime,
            &mut listener,
            &address,
            hello(4, PeerRole::JobManager, "jobmanager"),
            hello(9, PeerRole::TaskManager, "tm-3"),
        )
        .await;
        let Err(HandshakeFailure::RefusedPeer { error: jm_error, peer_reason: jm_heard }) = jm_result else {
            panic!("the JobManager refuses: {jm_result:?}");
        };
        let Err(HandshakeFailure::RefusedPeer { error: tm_error, peer_reason: tm_heard }) = tm_result else {
            panic!("the TaskManager refuses: {tm_result:?}");
        };
        assert_eq!(jm_error.to_string(), "peer belongs to cluster-9, this node to cluster-4");
        assert_eq!(tm_error.to_string(), "peer belongs to cluster-4, this node to cluster-9");
        // Each side heard exactly the reason the other side gave.
        assert_eq!(tm_heard.as_deref(), Some(jm_error.to_string().as_str()));
        assert_eq!(jm_heard.as_deref(), Some(tm_error.to_string().as_str()));
    });
}

/// A peer that writes frames by hand: it can say what a correct node never would.
async fn raw_peer(address: &str) -> SmolConnection {
    SmolConnection::new(TcpStream::connect(address).await.unwrap()).unwrap()
}

#[test]
fn a_refused_peer_reads_the_refusers_reason() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let server = async {
            let (mut conn, _) = listener.accept().await.unwrap();
            handshake(&runtime, &mut conn, hello(4, PeerRole::JobManager, "jobmanager"), TIMEOUT).await
        };
        let newer_peer = async {
            let mut conn = raw_peer(&address).await;
            let mut newer = hello(4, PeerRole::TaskManager, "tm-3");
            newer.protocol_version = PROTOCOL_VERSION + 1;
            send_message(&mut conn, &newer).await.unwrap();
            let server_hello: Hello = recv_message(&mut conn).await.unwrap().unwrap();
            assert_eq!(server_hello.node, "jobmanager");
            let verdict: Verdict = recv_message(&mut conn).await.unwrap().unwrap();
            // The refuser closes after its verdict.
            assert!(conn.recv().await.unwrap().is_none());
            verdict
        };
        let (server_result, verdict) = smol::future::zip(server, newer_peer).await;
        let Err(HandshakeFailure::RefusedPeer { error, peer_reason: None }) = server_result else {
            panic!("the server refuses: {server_result:?}");
        };
        let expected = format!(
            "peer speaks protocol version {}, this node speaks {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        );
        assert_eq!(error.to_string(), expected);
        let Verdict::Refused(refusal) = verdict else { panic!("refused: {verdict:?}") };
        assert_eq!(refusal.reason, error.to_string());
    });
}

#[test]
fn a_refusal_by_the_peer_carries_its_reason() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        // A JobManager endpoint that serves clients only, answering by hand.
        let server = async {
            let (mut conn, _) = listener.accept().await.unwrap();
            send_message(&mut conn, &hello(4, PeerRole::JobManager, "jobmanager")).await.unwrap();
            let _: Hello = recv_message(&mut conn).await.unwrap().unwrap();
            let refusal = rivulet_core::protocol::Refusal::new("this endpoint serves clients only");
            send_message(&mut conn, &Verdict::Refused(refusal)).await.unwrap();
            // Wait for the TaskManager's verdict and its close.
            let _: Verdict = recv_message(&mut conn).await.unwrap().unwrap();
            assert!(conn.recv().await.unwrap().is_none());
        };
        let tm = async {
            let mut conn = runtime.connect(&address).await.unwrap();
            let result =
                handshake(&runtime, &mut conn, hello(4, PeerRole::TaskManager, "tm-3"), TIMEOUT).await;
            drop(conn);
            result
        };
        let ((), tm_result) = smol::future::zip(server, tm).await;
        let Err(HandshakeFailure::RefusedByPeer(HandshakeError::Refused { node, reason })) = tm_result else {
            panic!("refused by the peer: {tm_result:?}");
        };
        assert_eq!((node.as_str(), reason.as_str()), ("jobmanager", "this endpoint serves clients only"));
    });
}

#[test]
fn a_peer_speaking_http_is_refused_and_the_server_keeps_accepting() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        // The server: one handshake task per connection, outcomes reported on a channel.
        let (outcomes, outcomes_received) = async_channel::unbounded();
        let server_runtime = runtime.clone();
        runtime.spawn("accept", async move {
            loop {
                let Ok((mut conn, _peer)) = listener.accept().await else { return };
                let outcomes = outcomes.clone();
                let task_runtime = server_runtime.clone();
                server_runtime.spawn("handshake", async move {
                    let local = hello(4, PeerRole::JobManager, "jobmanager");
                    let result = handshake(&task_runtime, &mut conn, local, TIMEOUT).await;
                    let _ = outcomes.send(result.map_err(|failure| failure.to_string())).await;
                });
            }
        });

        let mut http = TcpStream::connect(address.as_str()).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let refused = outcomes_received.recv().await.unwrap().unwrap_err();
        assert!(refused.contains("peer is not a Rivulet node"), "{refused}");
        assert!(refused.contains("\"GET \""), "{refused}");
        // The HTTP client got our hello and the refusal, in frames it cannot read, then the close.
        let mut answer = Vec::new();
        let _ = http.read_to_end(&mut answer).await;
        assert!(String::from_utf8_lossy(&answer).contains("peer is not a Rivulet node"));

        let mut tm = runtime.connect(&address).await.unwrap();
        let tm_result = handshake(&runtime, &mut tm, hello(4, PeerRole::TaskManager, "tm-3"), TIMEOUT).await;
        assert_eq!(tm_result.unwrap().node, "jobmanager");
        assert_eq!(outcomes_received.recv().await.unwrap().unwrap().node, "tm-3");
    });
}

#[test]
fn a_frame_header_above_the_limit_fails_the_connection() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let mut raw = TcpStream::connect(address.as_str()).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let declared = u32::try_from(FRAME_BYTES_MAX + 1).unwrap();
        raw.write_all(&declared.to_be_bytes()).await.unwrap();
        raw.write_all(b"whatever follows is never read").await.unwrap();

        let error = conn.recv().await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let frame_error = error.get_ref().and_then(|inner| inner.downcast_ref::<FrameError>());
        assert_eq!(
            frame_error,
            Some(&FrameError::TooLarge { length: FRAME_BYTES_MAX + 1, max: FRAME_BYTES_MAX })
        );
        assert!(error.to_string().contains("above the limit"), "{error}");
        // The connection is unusable from then on, even if valid frames follow.
        raw.write_all(&[0, 0, 0, 0]).await.unwrap();
        assert_eq!(conn.recv().await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    });
}

#[test]
fn a_malformed_message_is_invalid_data() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let mut raw = raw_peer(&address).await;
        let (mut conn, _) = listener.accept().await.unwrap();
        // Variant 200 of ToJobManager does not exist.
        raw.send(&[200]).await.unwrap();
        let error = recv_message::<_, ToJobManager>(&mut conn).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().starts_with("malformed message: ToJobManager"), "{error}");
    });
}

#[test]
fn a_silent_peer_hits_the_handshake_timeout() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        // Connects and never says a word; kept alive until the end of the test.
        let _silent = TcpStream::connect(address.as_str()).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let local = hello(4, PeerRole::JobManager, "jobmanager");
        let result = handshake(&runtime, &mut conn, local, Duration::from_millis(200)).await;
        assert!(matches!(result, Err(HandshakeFailure::TimedOut { .. })), "{result:?}");
    });
}

#[test]
fn a_peer_that_closes_during_the_handshake_is_reported() {
    smol::block_on(async {
        let runtime = SmolRuntime::new();
        let (mut listener, address) = listener(&runtime).await;
        let quitter = TcpStream::connect(address.as_str()).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        drop(quitter);
        let local = hello(4, PeerRole::JobManager, "jobmanager");
        let result = handshake(&runtime, &mut conn, local, TIMEOUT).await;
        // The close may also surface as a reset of our hello's write.
        assert!(matches!(result, Err(HandshakeFailure::Closed | HandshakeFailure::Io(_))), "{result:?}");
    });
}
