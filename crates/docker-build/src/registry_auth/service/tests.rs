//! The `Auth` service's answers, called in process through its tonic trait, and the token
//! exchange against a token server on 127.0.0.1 run by the test (hyper's HTTP/1 server), which
//! checks the credentials it gets and records each request.

use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tonic::Code;

use super::*;

const USER: &str = "alice";
const PASSWORD: &str = "pa55-w0rd";
const REFRESH: &str = "refresh-t0ken";

fn config(json: &str) -> DockerConfig {
    DockerConfig::from_json(json.as_bytes()).unwrap()
}

fn auths() -> DockerConfig {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    config(&format!(
        r#"{{"auths": {{"reg.example:5000": {{"auth": "{basic}"}},
                       "https://index.docker.io/v1/": {{"identitytoken": "{REFRESH}"}}}}}}"#
    ))
}

async fn credentials(service: &AuthService, host: &str) -> Result<(String, String), Status> {
    let request = Request::new(CredentialsRequest { host: host.into() });
    let response = service.credentials(request).await?.into_inner();
    Ok((response.username, response.secret))
}

#[tokio::test]
async fn credentials_answer_as_buildx_answers() {
    let service = AuthService::new(auths());
    assert_eq!(
        credentials(&service, "reg.example:5000").await.unwrap(),
        (USER.to_owned(), PASSWORD.to_owned())
    );
    assert_eq!(
        credentials(&service, "registry-1.docker.io").await.unwrap(),
        (String::new(), REFRESH.to_owned()),
        "an identity token goes without a user"
    );
    assert_eq!(
        credentials(&service, "other.example").await.unwrap(),
        (String::new(), String::new()),
        "none: the empty answer, which the daemon takes as anonymous"
    );
    let debug = format!("{service:?}");
    assert!(debug.contains("reg.example:5000"), "{debug}");
    assert!(
        !debug.contains(PASSWORD) && !debug.contains(REFRESH),
        "{debug}"
    );
}

#[tokio::test]
async fn the_daemon_is_told_there_is_no_token_authority() {
    let service = AuthService::new(auths());
    let get = service
        .get_token_authority(Request::new(GetTokenAuthorityRequest {
            host: "reg.example:5000".into(),
            salt: vec![1; 32].into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::Unimplemented);
    let verify = service
        .verify_token_authority(Request::new(VerifyTokenAuthorityRequest {
            host: "reg.example:5000".into(),
            payload: vec![2; 32].into(),
            salt: vec![1; 32].into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(verify.code(), Code::Unimplemented);
}

// The helpers' lock is held across the call on purpose: it keeps other tests from writing a
// script while this one's helper starts; they wait on their own threads.
#[allow(clippy::await_holding_lock)]
#[cfg(unix)]
#[tokio::test]
async fn a_failing_lookup_fails_the_call_with_its_message_and_no_secret() {
    let dir = crate::registry_auth::tests::TempDir::new();
    dir.helper(
        "failing",
        &format!("echo 'store is locked'\necho {PASSWORD}\nexit 1"),
    );
    let service =
        AuthService::new(config(r#"{"credsStore": "failing"}"#).with_helper_path(dir.path()));
    let _running = crate::registry_auth::tests::running_helpers();
    let status = credentials(&service, "reg.example:5000").await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unknown,
        "not Unimplemented: the build must fail"
    );
    assert_eq!(
        status.message(),
        "registry credentials for reg.example:5000: the credential helper \
         docker-credential-failing failed (exit status: 1): store is locked"
    );
}

/// One request as the token server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

/// A token server on 127.0.0.1: `GET` wants basic auth of `USER:PASSWORD` or none (an
/// anonymous token); `POST` answers `post_status` unless it is 200, then wants the OAuth2 form
/// with the refresh token or the password.
struct TokenServer {
    realm: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    async fn start(post_status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let log = log.clone();
                        async move { Ok::<_, hyper::Error>(answer(request, post_status, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenServer { realm, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    post_status: u16,
    log: &Mutex<Vec<Seen>>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let target = request.uri().to_string();
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        target,
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let respond = |status: u16, json: &str| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json.to_owned())))
            .unwrap()
    };
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    match method.as_str() {
        "GET" => match authorization {
            None => respond(200, r#"{"token":"anonymous-token"}"#),
            Some(basic) if basic == expected_basic => {
                respond(200, r#"{"token":"basic-token","expires_in":300}"#)
            }
            Some(_) => respond(401, r#"{"details":"incorrect username or password"}"#),
        },
        "POST" if post_status != 200 => respond(post_status, "{}"),
        "POST" => {
            let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            let granted = match get("grant_type") {
                Some("refresh_token") => get("refresh_token") == Some(REFRESH),
                Some("password") => {
                    get("username") == Some(USER) && get("password") == Some(PASSWORD)
                }
                _ => false,
            };
            if granted && get("client_id") == Some(CLIENT_ID) {
                respond(200, r#"{"access_token":"oauth-token","expires_in":120}"#)
            } else {
                respond(401, "{}")
            }
        }
        _ => respond(405, "{}"),
    }
}

fn token_request(realm: &str) -> FetchTokenRequest {
    FetchTokenRequest {
        client_id: CLIENT_ID.into(),
        host: "reg.example:5000".into(),
        realm: realm.into(),
        service: "Docker registry".into(),
        scopes: vec![
            "repository:base:pull".into(),
            "repository:other:pull,push".into(),
        ],
    }
}

fn basic() -> Credentials {
    Credentials::Basic {
        username: USER.into(),
        password: super::super::Secret::new(PASSWORD),
    }
}

#[tokio::test]
async fn a_password_is_sent_as_the_oauth2_password_grant() {
    let server = TokenServer::start(200).await;
    let token = fetch_token(&token_request(&server.realm), Some(&basic()))
        .await
        .unwrap();
    assert_eq!(
        (token.token.as_str(), token.expires_in),
        ("oauth-token", 120)
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/token")
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(seen[0].body.as_bytes())
        .into_owned()
        .collect();
    assert!(
        form.contains(&(
            "scope".into(),
            "repository:base:pull repository:other:pull,push".into()
        )),
        "{form:?}"
    );
    assert!(
        form.contains(&("service".into(), "Docker registry".into())),
        "{form:?}"
    );
}

#[tokio::test]
async fn an_identity_token_is_sent_as_the_refresh_token_grant() {
    let server = TokenServer::start(200).await;
    let credentials = Credentials::IdentityToken(super::super::Secret::new(REFRESH));
    let token = fetch_token(&token_request(&server.realm), Some(&credentials))
        .await
        .unwrap();
    assert_eq!(token.token, "oauth-token");
}

#[tokio::test]
async fn a_server_without_post_gets_a_get_with_basic_auth() {
    for post_status in [404, 401, 405] {
        let server = TokenServer::start(post_status).await;
        let token = fetch_token(&token_request(&server.realm), Some(&basic()))
            .await
            .unwrap();
        assert_eq!(
            (token.token.as_str(), token.expires_in),
            ("basic-token", 300)
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "{post_status}: {seen:?}");
        assert_eq!(seen[1].method, "GET");
        assert_eq!(
            seen[1].target,
            "/token?service=Docker+registry&scope=repository%3Abase%3Apull\
             &scope=repository%3Aother%3Apull%2Cpush"
        );
    }
}

#[tokio::test]
async fn anonymous_is_a_get_without_credentials() {
    let server = TokenServer::start(200).await;
    let token = fetch_token(&token_request(&server.realm), None)
        .await
        .unwrap();
    assert_eq!(
        (token.token.as_str(), token.expires_in),
        ("anonymous-token", DEFAULT_EXPIRATION)
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].authorization.as_deref()),
        ("GET", None)
    );
}

#[tokio::test]
async fn a_wrong_password_is_the_servers_401_without_the_password() {
    let server = TokenServer::start(404).await;
    let wrong = Credentials::Basic {
        username: USER.into(),
        password: super::super::Secret::new("wrong-password"),
    };
    let error = fetch_token(&token_request(&server.realm), Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(error, TokenError::Status { status: 401 }),
        "{error:?}"
    );

    // Through the service: the host's credentials from the configuration, the error a status.
    let config = config(&format!(
        r#"{{"auths": {{"reg.example:5000": {{"username": "{USER}", "password": "wrong-password"}}}}}}"#
    ));
    let service = AuthService::new(config);
    let status = service
        .fetch_token(Request::new(token_request(&server.realm)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(
        status.message(),
        format!(
            "token for reg.example:5000 from {}: the token server answered 401",
            server.realm
        )
    );
    assert!(!status.message().contains("wrong-password"));
}

#[tokio::test]
async fn the_service_fetches_with_the_hosts_credentials() {
    let server = TokenServer::start(404).await;
    let service = AuthService::new(auths());
    let token = service
        .fetch_token(Request::new(token_request(&server.realm)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.token, "basic-token");
    let https = service
        .fetch_token(Request::new(token_request("https://auth.example/token")))
        .await
        .unwrap_err();
    assert_eq!(https.code(), Code::Unimplemented);
}

#[test]
fn realms() {
    let parse = |realm| Realm::parse(realm).map(|r| (r.authority, r.address, r.path));
    assert_eq!(
        parse("http://auth.example/token").unwrap(),
        (
            "auth.example".into(),
            "auth.example:80".into(),
            "/token".into()
        )
    );
    assert_eq!(
        parse("HTTP://127.0.0.1:5001?x=1").unwrap(),
        (
            "127.0.0.1:5001".into(),
            "127.0.0.1:5001".into(),
            "/?x=1".into()
        )
    );
    assert_eq!(
        parse("http://[::1]").unwrap(),
        ("[::1]".into(), "[::1]:80".into(), "/".into())
    );
    assert!(matches!(
        parse("https://auth.example/token"),
        Err(TokenError::HttpsRealm)
    ));
    for invalid in [
        "auth.example/token",
        "http://",
        "http://user@host/",
        "ftp://x/",
    ] {
        assert!(
            matches!(parse(invalid), Err(TokenError::InvalidRealm)),
            "{invalid}"
        );
    }
}
