//! The session against a fake daemon on an in-memory pipe: `POST /session` answered `101`, then
//! the fake calls the session's services with the generated tonic clients, as BuildKit does.

use std::time::Duration;

use buildkit_proto::session::auth::auth_client::AuthClient;
use buildkit_proto::session::auth::{
    CredentialsRequest, CredentialsResponse, GetTokenAuthorityRequest,
};
use buildkit_proto::session::health::health_client::HealthClient;
use buildkit_proto::session::secrets::secrets_client::SecretsClient;
use buildkit_proto::session::sshforward::ssh_client::SshClient;
use hyper::HeaderMap;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, DuplexStream};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::http::Uri;

use super::*;

/// A generous bound for things that happen at once on a working machine.
const WAIT: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"))
}

/// The daemon's side of a session: what it was sent, and a gRPC channel to the session.
struct Fake {
    headers: HeaderMap,
    path: String,
    channel: Option<Channel>,
    /// Ends when the HTTP/2 connection to the session ends.
    connection: Option<tokio::task::JoinHandle<()>>,
}

/// The fake daemon's gRPC client side of the session: one HTTP/2 connection.
#[derive(Clone)]
struct Channel(hyper::client::conn::http2::SendRequest<Body>);

impl tower_service::Service<Request<Body>> for Channel {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

fn origin() -> Uri {
    Uri::from_static("http://session")
}

/// Serves `POST /session` on `io` like the daemon: `101` and an HTTP/2 client on the upgraded
/// socket, or with `refuse` a 404 with a JSON message.
fn fake_daemon(io: DuplexStream, refuse: bool) -> oneshot::Receiver<Fake> {
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let headers = request.headers().clone();
            let path = request.uri().path().to_string();
            let send = move |fake: Fake| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(fake);
                }
            };
            if refuse {
                send(Fake {
                    headers,
                    path,
                    channel: None,
                    connection: None,
                });
                let body = Bytes::from_static(br#"{"message":"page not found"}"#);
                return Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(404)
                        .body(http_body_util::Full::new(body))
                        .unwrap(),
                );
            }
            tokio::spawn(async move {
                let upgraded = hyper::upgrade::on(request).await.expect("upgrade");
                let (sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), upgraded)
                        .await
                        .expect("HTTP/2 handshake");
                let connection = tokio::spawn(async move {
                    let _ = connection.await;
                });
                send(Fake {
                    headers,
                    path,
                    channel: Some(Channel(sender)),
                    connection: Some(connection),
                });
            });
            Ok(Response::builder()
                .status(101)
                .header(CONNECTION, "Upgrade")
                .header(UPGRADE, "h2c")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap())
        }
    });
    tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    );
    rx
}

fn host() -> DockerHost {
    DockerHost::Unix("/fake/docker.sock".into())
}

/// Starts `session` against a fake daemon.
async fn start(session: Session) -> (ActiveSession, Fake) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let fake = fake_daemon(theirs, false);
    let active = within("the session start", session.start_on(ours, "1.41", &host()))
        .await
        .expect("the session starts");
    let fake = within("the fake's upgrade", fake).await.unwrap();
    (active, fake)
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn session(secrets: &[Secret], ssh: &[SshAgent]) -> Session {
    Session::with_env(secrets, ssh, no_env).unwrap()
}

#[tokio::test]
async fn the_daemon_is_told_the_session_and_every_method_and_health_answers_serving() {
    let session = session(&[], &[]).with_id("k2r8dwrp6d0r0x0m4d3z3ibxd");
    let (active, fake) = start(session).await;
    assert_eq!(active.id(), "k2r8dwrp6d0r0x0m4d3z3ibxd");
    assert_eq!(fake.path, "/v1.41/session");
    let header = |name: &str| -> Vec<&str> {
        fake.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(header("x-docker-expose-session-uuid"), [active.id()]);
    assert_eq!(header("x-docker-expose-session-name"), ["docker-build"]);
    assert_eq!(header("x-docker-expose-session-sharedkey"), [""]);
    assert_eq!(header("x-docker-expose-session-grpc-method"), METHODS);
    assert_eq!(header("upgrade"), ["h2c"]);
    assert_eq!(header("connection"), ["Upgrade"]);

    let mut health = HealthClient::with_origin(fake.channel.clone().unwrap(), origin());
    let answer = within("Check", health.check(HealthCheckRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);
    let unknown = within(
        "Check",
        health.check(HealthCheckRequest {
            service: "moby.other.v1.Other".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(!active.is_finished());
}

#[tokio::test]
async fn every_announced_method_is_routed_and_others_are_unimplemented() {
    let (_active, fake) = start(session(&[], &[])).await;
    let channel = fake.channel.unwrap();
    // Each announced method reaches its service: they answer, none says Unimplemented.
    let mut secrets = SecretsClient::with_origin(channel.clone(), origin());
    let status = secrets
        .get_secret(GetSecretRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let mut ssh = SshClient::with_origin(channel.clone(), origin());
    let status = ssh
        .check_agent(CheckAgentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "unset ssh forward key default");
    let status = ssh
        .forward_agent(tokio_stream_of(Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn registry_credentials_are_answered_from_the_docker_configuration() {
    let config = crate::registry_auth::DockerConfig::from_json(
        br#"{"auths": {"127.0.0.1:5000": {"username": "user", "password": "pw"}}}"#,
    )
    .unwrap();
    let (_active, fake) = start(session(&[], &[]).with_docker_config(config)).await;
    let mut auth = AuthClient::with_origin(fake.channel.unwrap(), origin());
    let answer = |host: &str| CredentialsRequest { host: host.into() };
    let known = auth.credentials(answer("127.0.0.1:5000")).await.unwrap();
    assert_eq!(
        (
            known.get_ref().username.as_str(),
            known.get_ref().secret.as_str()
        ),
        ("user", "pw")
    );
    // None: the empty answer, which BuildKit reads as anonymous.
    let unknown = auth
        .credentials(answer("registry-1.docker.io"))
        .await
        .unwrap();
    assert_eq!(unknown.into_inner(), CredentialsResponse::default());
    // No token authority: Unimplemented, so the daemon fetches tokens itself.
    let status = auth
        .get_token_authority(GetTokenAuthorityRequest {
            host: "127.0.0.1:5000".into(),
            salt: vec![0; 32].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
}

#[tokio::test]
async fn secrets_are_served_by_id_and_unknown_ids_are_not_found() {
    let dir = temp_dir("secrets");
    let file = dir.join("token.txt");
    std::fs::write(&file, "from-a-file\n").unwrap();
    // cargo sets CARGO_PKG_NAME for the test process; its value is known at compile time.
    let secrets = [
        Secret::file("file", &file),
        Secret::env("env", "CARGO_PKG_NAME"),
        Secret::bytes("bytes", "in-memory"),
        Secret::bytes("twice", "first"),
        Secret::bytes("twice", "second"),
    ];
    let session = Session::with_env(&secrets, &[], |var| std::env::var_os(var)).unwrap();
    let (_active, fake) = start(session).await;
    let mut client = SecretsClient::with_origin(fake.channel.unwrap(), origin());
    for (id, value) in [
        ("file", "from-a-file\n"),
        ("env", env!("CARGO_PKG_NAME")),
        ("bytes", "in-memory"),
        ("twice", "second"),
    ] {
        let answer = client
            .get_secret(GetSecretRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
            .into_inner();
        assert_eq!(answer.data, value.as_bytes(), "{id}");
    }
    let missing = client
        .get_secret(GetSecretRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(missing.message(), "secret nope not found");

    // A file that went away: the error names the id and the path, not a value.
    std::fs::remove_file(&file).unwrap();
    let gone = client
        .get_secret(GetSecretRequest {
            id: "file".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::Unavailable);
    assert!(
        gone.message().contains(&file.display().to_string()),
        "{gone:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refused_session_names_the_status_and_the_daemons_message() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let _fake = fake_daemon(theirs, true);
    let err = session(&[], &[])
        .start_on(ours, "1.41", &host())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Refused { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the Docker daemon at unix:///fake/docker.sock refused a BuildKit session (POST /session answered HTTP 404: page not found)"
    );
}

/// A fake SSH agent: echoes what each connection sends, and reports each connection's end.
fn fake_agent(path: &std::path::Path) -> mpsc::UnboundedReceiver<&'static str> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send("connected");
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send("closed");
            });
        }
    });
    rx
}

/// A request stream of `messages` that stays open after them (as the daemon's side of a
/// forwarded agent connection does while the step runs).
fn open_stream(
    messages: Vec<&'static [u8]>,
) -> (
    mpsc::UnboundedSender<BytesMessage>,
    impl futures_core::Stream<Item = BytesMessage> + Send + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    for data in messages {
        tx.send(BytesMessage {
            data: Bytes::from_static(data),
        })
        .unwrap();
    }
    (tx, Receiver(rx))
}

struct Receiver<T>(mpsc::UnboundedReceiver<T>);

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn tokio_stream_of(
    messages: Vec<BytesMessage>,
) -> impl futures_core::Stream<Item = BytesMessage> + Send + 'static {
    let (tx, rx) = mpsc::unbounded_channel();
    for m in messages {
        tx.send(m).unwrap();
    }
    Receiver(rx)
}

fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "docker-build-session-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn an_ssh_agent_is_forwarded_and_dropping_the_session_ends_every_task() {
    let dir = temp_dir("ssh");
    let socket = dir.join("agent.sock");
    let mut agent = fake_agent(&socket);
    let session = session(&[], &[SshAgent::socket("github", &socket)]);
    let (active, fake) = start(session).await;
    let mut client = SshClient::with_origin(fake.channel.unwrap(), origin());

    client
        .check_agent(CheckAgentRequest {
            id: "github".into(),
        })
        .await
        .unwrap();
    let unset = client
        .check_agent(CheckAgentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unset.message(), "unset ssh forward key default");

    let (_keep_open, requests) = open_stream(vec![b"ping-1", b"ping-2"]);
    let mut request = tonic::Request::new(requests);
    request
        .metadata_mut()
        .insert(KEY_SSH_ID, "github".parse().unwrap());
    let mut answers = within("ForwardAgent", client.forward_agent(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        within("a connection", agent.recv()).await,
        Some("connected")
    );
    let mut echoed = Vec::new();
    while echoed.len() < b"ping-1ping-2".len() {
        let message = within("the agent's echo", answers.message())
            .await
            .unwrap()
            .expect("the stream stays open");
        echoed.extend_from_slice(&message.data);
    }
    assert_eq!(echoed, b"ping-1ping-2");

    // The build is over: dropping the session closes the agent connection (its copy task
    // ended) and the connection to the daemon, although the daemon's side left both open.
    drop(active);
    assert_eq!(
        within("the agent's EOF", agent.recv()).await,
        Some("closed")
    );
    within("the HTTP/2 connection's end", fake.connection.unwrap())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn key_files_are_served_by_an_in_process_agent() {
    use ssh_key::private::{Ed25519Keypair, KeypairData};
    let dir = temp_dir("ssh-keys");
    let mut paths = Vec::new();
    let mut keys = Vec::new();
    for (seed, comment) in [(3u8, "first@test"), (4, "second@test")] {
        let key = ssh_key::PrivateKey::new(
            KeypairData::Ed25519(Ed25519Keypair::from_seed(&[seed; 32])),
            comment,
        )
        .unwrap();
        let path = dir.join(format!("id_{seed}"));
        std::fs::write(
            &path,
            key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        paths.push(path.display().to_string());
        keys.push(key);
    }
    let spec: SshAgent = format!("keys={}", paths.join(",")).parse().unwrap();
    let session = session(&[], &[spec]);
    // The session's Debug shows fingerprints, never key material.
    let debug = format!("{session:?}");
    assert!(
        debug.contains(&keys[0].fingerprint(ssh_key::HashAlg::Sha256).to_string()),
        "{debug}"
    );
    let (active, fake) = start(session).await;
    let mut client = SshClient::with_origin(fake.channel.unwrap(), origin());
    client
        .check_agent(CheckAgentRequest { id: "keys".into() })
        .await
        .unwrap();

    // SSH_AGENTC_REQUEST_IDENTITIES, split over two messages as a stream may be.
    let (_keep_open, requests) = open_stream(vec![b"\0\0\0", b"\x01\x0b"]);
    let mut request = tonic::Request::new(requests);
    request
        .metadata_mut()
        .insert(KEY_SSH_ID, "keys".parse().unwrap());
    let mut answers = within("ForwardAgent", client.forward_agent(request))
        .await
        .unwrap()
        .into_inner();
    let mut answer = Vec::new();
    let mut expected = vec![agent::IDENTITIES_ANSWER];
    agent::put_u32(&mut expected, 2);
    for key in &keys {
        agent::put_string(&mut expected, &key.public_key().to_bytes().unwrap());
        agent::put_string(&mut expected, key.comment().as_bytes());
    }
    while answer.len() < expected.len() + 4 {
        let message = within("the agent's answer", answers.message())
            .await
            .unwrap()
            .expect("the stream stays open");
        answer.extend_from_slice(&message.data);
    }
    let mut framed = Vec::new();
    agent::put_string(&mut framed, &expected);
    assert_eq!(answer, framed);
    drop(active);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn setup_errors_name_the_secret_or_agent_and_never_a_value() {
    let dir = temp_dir("setup");
    let missing = dir.join("missing.txt");
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![b'x'; MAX_SECRET_SIZE as usize + 1]).unwrap();
    let key = dir.join("id_ed25519");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let socket = dir.join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let env = |var: &str| (var == "SET").then(|| OsString::from("s3cr3t-value"));

    let cases: Vec<(Vec<Secret>, Vec<SshAgent>, String)> = vec![
        (
            vec![Secret::file("f", &missing)],
            vec![],
            format!("secret \"f\": cannot read {}", missing.display()),
        ),
        (
            vec![Secret::env("e", "UNSET")],
            vec![],
            "secret \"e\": the environment variable UNSET is not set".into(),
        ),
        (
            vec![Secret::file("big", &big)],
            vec![],
            "secret \"big\" is 512001 bytes; BuildKit takes at most 512000".into(),
        ),
        (
            vec![Secret::bytes(
                "mem",
                vec![b's'; MAX_SECRET_SIZE as usize + 1],
            )],
            vec![],
            "secret \"mem\" is 512001 bytes; BuildKit takes at most 512000".into(),
        ),
        (
            vec![],
            vec![SshAgent::default()],
            "SSH agent \"default\": SSH_AUTH_SOCK is not set; start an ssh-agent or give ID=SOCKET"
                .into(),
        ),
        (
            vec![],
            vec![SshAgent::socket("k", &key)],
            format!(
                "SSH agent \"k\": {} is not an OpenSSH private key",
                key.display()
            ),
        ),
        (
            vec![],
            vec![
                format!("mixed={},{}", key.display(), socket.display())
                    .parse()
                    .unwrap(),
            ],
            format!(
                "SSH agent \"mixed\": {} is an agent socket; give one socket or only private key files",
                socket.display()
            ),
        ),
        (
            vec![],
            vec![SshAgent::socket("m", &missing)],
            format!("SSH agent \"m\": cannot use {}", missing.display()),
        ),
        (
            vec![],
            vec![
                format!("two={},{}", key.display(), missing.display())
                    .parse()
                    .unwrap(),
            ],
            format!("SSH agent \"two\": cannot use {}", missing.display()),
        ),
        (
            vec![],
            vec![SshAgent::socket("d", &key), SshAgent::socket("d", &key)],
            // The duplicate is found before the paths are looked at.
            "SSH agent \"d\" is given twice".into(),
        ),
    ];
    for (secrets, ssh, message) in cases {
        let err = Session::with_env(&secrets, &ssh, env).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // A set variable is fine; its value shows nowhere.
    let session = Session::with_env(&[Secret::env("e", "SET")], &[], env).unwrap();
    assert!(!format!("{session:?}").contains("s3cr3t"), "{session:?}");
    let session = Session::with_env(&[Secret::bytes("b", "s3cr3t-bytes")], &[], env).unwrap();
    assert!(!format!("{session:?}").contains("s3cr3t"), "{session:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn session_ids_are_25_characters_of_base_36_and_differ() {
    let (a, b) = (new_id(), new_id());
    assert_ne!(a, b);
    for id in [a, b] {
        assert_eq!(id.len(), 25, "{id}");
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_tar_output_is_written_from_the_exporters_chunks_and_then_reported_finished() {
    use buildkit_proto::session::filesend::BytesMessage;
    use buildkit_proto::session::filesend::file_send_client::FileSendClient;

    let dir = temp_dir("tar-output");
    let file = dir.join("out.tar");
    let session = session(&[], &[]).with_output(crate::Output::Tar {
        dest: crate::TarDest::File(file.clone()),
    });
    let (active, fake) = start(session).await;
    assert!(!active.export_finished());
    let mut client = FileSendClient::with_origin(fake.channel.unwrap(), origin());
    let chunks = ["first chunk|", "", "second|", "last"].map(|text| BytesMessage {
        data: Bytes::from_static(text.as_bytes()),
        ..Default::default()
    });
    let mut answers = within(
        "DiffCopy",
        client.diff_copy(tonic::codegen::tokio_stream::iter(chunks)),
    )
    .await
    .unwrap()
    .into_inner();
    // The call ends (the exporter waits for that) once every byte is written.
    assert_eq!(within("the end", answers.message()).await.unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "first chunk|second|last"
    );
    assert!(active.export_finished());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exporter's side of a `local` output: packets to send, as a request stream.
struct Outgoing(mpsc::Receiver<buildkit_proto::session::filesend::Packet>);

impl futures_core::Stream for Outgoing {
    type Item = buildkit_proto::session::filesend::Packet;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::test]
async fn a_local_output_speaks_fsutils_protocol_over_filesend() {
    use buildkit_proto::session::filesend::{Packet, PacketType, Stat};

    let dir = temp_dir("local-output");
    let dest = dir.join("out");
    let session = session(&[], &[]).with_output(crate::Output::Local { dest: dest.clone() });
    let (active, fake) = start(session).await;
    let mut grpc = tonic::client::Grpc::with_origin(fake.channel.unwrap(), origin());
    within("ready", grpc.ready()).await.unwrap();
    let (send, outgoing) = mpsc::channel(16);
    let stat = |path: &str, mode: u32| Packet {
        r#type: PacketType::PacketStat.into(),
        stat: Some(Stat {
            path: path.into(),
            mode,
            ..Default::default()
        }),
        ..Default::default()
    };
    // The listing, as fsutil's sender walks it: a folder, a file in it, the end.
    send.send(stat("d", (1 << 31) | 0o755)).await.unwrap();
    send.send(stat("d/f", 0o600)).await.unwrap();
    send.send(Packet::default()).await.unwrap();
    let mut answers = within(
        "DiffCopy",
        grpc.streaming(
            tonic::Request::new(Outgoing(outgoing)),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/moby.filesync.v1.FileSend/DiffCopy",
            ),
            tonic_prost::ProstCodec::<Packet, Packet>::default(),
        ),
    )
    .await
    .unwrap()
    .into_inner();
    // The receiver asks for entry 1, the file.
    let request = within("REQ", answers.message()).await.unwrap().unwrap();
    assert_eq!(request.r#type(), PacketType::PacketReq);
    assert_eq!(request.id, 1);
    for data in ["hello ", "world", ""] {
        let packet = Packet {
            r#type: PacketType::PacketData.into(),
            id: 1,
            data: Bytes::from_static(data.as_bytes()),
            ..Default::default()
        };
        send.send(packet).await.unwrap();
    }
    // Everything is written before its FIN.
    let fin = within("FIN", answers.message()).await.unwrap().unwrap();
    assert_eq!(fin.r#type(), PacketType::PacketFin);
    assert!(active.export_finished());
    assert_eq!(
        std::fs::read_to_string(dest.join("d/f")).unwrap(),
        "hello world"
    );
    // Our FIN ends the call.
    let fin = Packet {
        r#type: PacketType::PacketFin.into(),
        ..Default::default()
    };
    send.send(fin).await.unwrap();
    assert_eq!(within("the end", answers.message()).await.unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_local_output_refuses_a_path_out_of_dest_with_an_err_packet_and_the_status() {
    use buildkit_proto::session::filesend::{Packet, PacketType, Stat};

    let dir = temp_dir("local-escape");
    let dest = dir.join("out");
    let session = session(&[], &[]).with_output(crate::Output::Local { dest: dest.clone() });
    let (active, fake) = start(session).await;
    let mut grpc = tonic::client::Grpc::with_origin(fake.channel.unwrap(), origin());
    within("ready", grpc.ready()).await.unwrap();
    let (send, outgoing) = mpsc::channel(16);
    send.send(Packet {
        r#type: PacketType::PacketStat.into(),
        stat: Some(Stat {
            path: "../escaped".into(),
            mode: 0o644,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answers = within(
        "DiffCopy",
        grpc.streaming(
            tonic::Request::new(Outgoing(outgoing)),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/moby.filesync.v1.FileSend/DiffCopy",
            ),
            tonic_prost::ProstCodec::<Packet, Packet>::default(),
        ),
    )
    .await
    .unwrap()
    .into_inner();
    let err = within("ERR", answers.message()).await.unwrap().unwrap();
    assert_eq!(err.r#type(), PacketType::PacketErr);
    let message = r#"refusing the output entry "../escaped": the path has a `..` component"#;
    assert_eq!(err.data, message.as_bytes());
    let status = within("the status", answers.message()).await.unwrap_err();
    assert_eq!(status.message(), message);
    assert!(!active.export_finished());
    assert!(!dir.join("escaped").exists());
    drop(active);
    // Nothing was made, not even DEST.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    drop(send);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_local_output_that_cannot_be_written_fails_the_call_with_the_path() {
    use buildkit_proto::session::filesend::{Packet, PacketType, Stat};

    let dir = temp_dir("local-unwritable");
    // The destination is a file: no folder can be made there.
    let dest = dir.join("out");
    std::fs::write(&dest, b"a file").unwrap();
    let session = session(&[], &[]).with_output(crate::Output::Local { dest: dest.clone() });
    let (active, fake) = start(session).await;
    let mut grpc = tonic::client::Grpc::with_origin(fake.channel.unwrap(), origin());
    within("ready", grpc.ready()).await.unwrap();
    let (send, outgoing) = mpsc::channel(16);
    send.send(Packet {
        r#type: PacketType::PacketStat.into(),
        stat: Some(Stat {
            path: "f".into(),
            mode: 0o644,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    send.send(Packet::default()).await.unwrap();
    let mut answers = within(
        "DiffCopy",
        grpc.streaming(
            tonic::Request::new(Outgoing(outgoing)),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/moby.filesync.v1.FileSend/DiffCopy",
            ),
            tonic_prost::ProstCodec::<Packet, Packet>::default(),
        ),
    )
    .await
    .unwrap()
    .into_inner();
    // The REQ may go out before the writer has failed; then the ERR and the status.
    let status = loop {
        match within("the answers", answers.message()).await {
            Ok(Some(p)) if p.r#type() == PacketType::PacketReq => continue,
            Ok(Some(p)) => assert_eq!(p.r#type(), PacketType::PacketErr),
            Ok(None) => panic!("the call ended without an error"),
            Err(status) => break status,
        }
    };
    let message = status.message();
    assert!(
        message.starts_with(&format!("cannot write {}: ", dest.display())),
        "{message}"
    );
    assert!(!active.export_finished());
    drop(send);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tar_output_that_cannot_be_written_fails_the_call_with_the_path() {
    use buildkit_proto::session::filesend::BytesMessage;
    use buildkit_proto::session::filesend::file_send_client::FileSendClient;

    // The destination is a folder: no file can be made there.
    let dir = temp_dir("tar-unwritable");
    let session = session(&[], &[]).with_output(crate::Output::Tar {
        dest: crate::TarDest::File(dir.clone()),
    });
    let (active, fake) = start(session).await;
    let mut client = FileSendClient::with_origin(fake.channel.unwrap(), origin());
    let chunk = BytesMessage {
        data: Bytes::from_static(b"bytes"),
        ..Default::default()
    };
    let result = within(
        "DiffCopy",
        client.diff_copy(tonic::codegen::tokio_stream::iter([chunk])),
    )
    .await;
    let status = match result {
        Err(status) => status,
        Ok(response) => within("the end", response.into_inner().message())
            .await
            .unwrap_err(),
    };
    assert!(
        status
            .message()
            .starts_with(&format!("cannot write {}: ", dir.display())),
        "{status:?}"
    );
    assert!(!active.export_finished());
    let _ = std::fs::remove_dir_all(&dir);
}
