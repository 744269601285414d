//! `moby.filesync.v1.Auth`, the session service through which the daemon asks for registry
//! credentials, answered as `docker buildx build` answers (BuildKit's
//! `session/auth/authprovider`), from a [`DockerConfig`].
//!
//! What the daemon does with each method (BuildKit's `util/resolver/authorizer.go`, the same in
//! BuildKit 0.8 of Docker 20.10 and in today's):
//! - On a registry's `401` with a `Bearer` challenge it first calls `GetTokenAuthority`. This
//!   client has no token authority (buildx derives an ed25519 key from a seed file so the daemon
//!   can share tokens between sessions without seeing secrets): it answers `Unimplemented`,
//!   and the daemon goes on with `Credentials` and does the token exchange itself. Hence
//!   `VerifyTokenAuthority` is `Unimplemented` too, and the daemon never calls `FetchToken`,
//!   which it calls only for a session that gave it an authority.
//! - On a `Basic` challenge it calls `Credentials` and sends them as basic auth.
//! - `Credentials` with no credentials for the host is an empty response (user and secret
//!   empty), as buildx answers: the daemon then pulls anonymously. Any error status other than
//!   `Unimplemented` fails the pull, so a failing credential helper or a broken `config.json`
//!   fails the build with its message, which names the file or helper and never a secret.
//! - `FetchToken` is served anyway, as buildx serves it, for a daemon that calls it: the token
//!   exchange of a bearer challenge done here with the host's credentials (OAuth2 `POST` to the
//!   realm with the identity token or password, falling back to `GET` with basic auth on `401`,
//!   `404`, or `405` with a user; `GET` alone when anonymous). Realms over `http://` only:
//!   `https://` would need a root certificate store this crate does not carry (it trusts only a
//!   daemon's `ca.pem`), and is answered `Unimplemented`.
//!
//! Lookups run on tokio's blocking pool (a helper is a process) and are remembered per host for
//! the life of the service (one build's session), so a helper runs at most once per registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use buildkit_proto::session::auth::auth_server::Auth;
use buildkit_proto::session::auth::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::{Credentials, CredentialsError, DockerConfig};

/// The client id BuildKit and buildx send in an OAuth2 token request.
const CLIENT_ID: &str = "buildkit-client";
/// The lifetime BuildKit assumes for a token that states none, in seconds.
const DEFAULT_EXPIRATION: i64 = 60;
/// At most this much of a token response is read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// The `Auth` service of a build's session; see the [module docs](self).
///
/// `Debug` shows the hosts asked for, never a secret.
pub struct AuthService {
    /// Given, or `None`: [`DockerConfig::load`] at the first call (so a broken `config.json`
    /// fails only builds that need credentials).
    given: Mutex<Option<DockerConfig>>,
    /// The configuration in use, or why it could not be loaded (one line).
    config: tokio::sync::OnceCell<Result<Arc<DockerConfig>, String>>,
    known: Mutex<HashMap<String, Option<Credentials>>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self
            .known
            .lock()
            .map(|k| k.keys().cloned().collect::<Vec<_>>());
        f.debug_struct("AuthService")
            .field("hosts", &known.unwrap_or_default())
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Answers from `config`.
    pub fn new(config: DockerConfig) -> Self {
        Self::with(Some(config))
    }

    /// Answers from the docker CLI's configuration ([`DockerConfig::load`]), read at the first
    /// call.
    pub fn from_env() -> Self {
        Self::with(None)
    }

    fn with(given: Option<DockerConfig>) -> Self {
        AuthService {
            given: Mutex::new(given),
            config: tokio::sync::OnceCell::new(),
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn config(&self) -> Result<Arc<DockerConfig>, Status> {
        let loaded = self
            .config
            .get_or_init(|| async {
                let given = self.given.lock().ok().and_then(|mut given| given.take());
                match given {
                    Some(config) => Ok(Arc::new(config)),
                    None => match tokio::task::spawn_blocking(DockerConfig::load).await {
                        Ok(Ok(config)) => Ok(Arc::new(config)),
                        Ok(Err(error)) => Err(one_line(&error)),
                        Err(_) => Err("loading the Docker configuration failed".to_owned()),
                    },
                }
            })
            .await;
        loaded.clone().map_err(Status::unknown)
    }

    /// The credentials for `host`, from the cache or the configuration.
    async fn lookup(&self, host: &str) -> Result<Option<Credentials>, Status> {
        if let Some(known) = self.known.lock().ok().and_then(|k| k.get(host).cloned()) {
            return Ok(known);
        }
        let config = self.config().await?;
        let owned = host.to_owned();
        let found = tokio::task::spawn_blocking(move || config.credentials(&owned))
            .await
            .map_err(|_| {
                Status::unknown(format!("registry credentials for {host}: lookup failed"))
            })?
            .map_err(|error: CredentialsError| {
                Status::unknown(format!(
                    "registry credentials for {host}: {}",
                    one_line(&error)
                ))
            })?;
        if let Ok(mut known) = self.known.lock() {
            known.insert(host.to_owned(), found.clone());
        }
        Ok(found)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = &request.get_ref().host;
        let response = match self.lookup(host).await? {
            Some(credentials) => CredentialsResponse {
                username: credentials.username().to_owned(),
                secret: credentials.secret().expose().to_owned(),
            },
            None => CredentialsResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn fetch_token(
        &self,
        request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        let request = request.into_inner();
        let credentials = self.lookup(&request.host).await?;
        let token =
            fetch_token(&request, credentials.as_ref())
                .await
                .map_err(|error| match error {
                    TokenError::HttpsRealm => Status::unimplemented(error.to_string()),
                    other => Status::unknown(format!(
                        "token for {} from {}: {}",
                        request.host,
                        request.realm,
                        one_line(&other)
                    )),
                })?;
        Ok(Response::new(token))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("this client has no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("this client has no token authority"))
    }
}

/// An error and its sources on one line.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// Why a token exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The realm is not an `http://host[:port]/path` URL.
    #[error("the realm is not an http:// URL")]
    InvalidRealm,
    /// The realm is `https://`, which this client does not fetch from.
    #[error("token realms over https:// are not fetched by this client")]
    HttpsRealm,
    /// The token server could not be reached or the exchange broke off.
    #[error("request to the token server failed")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The token server answered with another status than `200`.
    #[error("the token server answered {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The answer is not a token JSON (`token` or `access_token`).
    #[error("the token server's answer holds no token")]
    NoToken,
}

/// The token exchange of a bearer challenge, as buildx's authprovider does it (see the module
/// docs). The response's `IssuedAt` is left 0: the daemon counts the lifetime from receipt.
pub async fn fetch_token(
    request: &FetchTokenRequest,
    credentials: Option<&Credentials>,
) -> Result<FetchTokenResponse, TokenError> {
    let realm = Realm::parse(&request.realm)?;
    let Some(credentials) = credentials else {
        return get_token(&realm, request, None).await;
    };
    match post_token(&realm, request, credentials).await {
        Err(TokenError::Status { status })
            if status == 404
                || status == 401
                || (status == 405 && !credentials.username().is_empty()) =>
        {
            get_token(&realm, request, Some(credentials)).await
        }
        other => other,
    }
}

/// `GET realm?service=…&scope=…`, with basic auth when there are credentials.
async fn get_token(
    realm: &Realm,
    request: &FetchTokenRequest,
    credentials: Option<&Credentials>,
) -> Result<FetchTokenResponse, TokenError> {
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !request.service.is_empty() {
            query.append_pair("service", &request.service);
        }
        for scope in &request.scopes {
            query.append_pair("scope", scope);
        }
        query.finish()
    };
    let separator = if realm.path.contains('?') { '&' } else { '?' };
    let target = if query.is_empty() {
        realm.path.clone()
    } else {
        format!("{}{separator}{query}", realm.path)
    };
    let mut builder = hyper::Request::get(target).header(hyper::header::HOST, &realm.authority);
    if let Some(credentials) = credentials {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credentials.username(),
            credentials.secret().expose()
        ));
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let http = builder
        .body(Full::new(Bytes::new()))
        .map_err(|e| TokenError::Http(Box::new(e)))?;
    let json = exchange(realm, http).await?;
    let token = ["token", "access_token"]
        .iter()
        .find_map(|name| json.get(*name).and_then(Value::as_str))
        .filter(|token| !token.is_empty())
        .ok_or(TokenError::NoToken)?;
    Ok(token_response(token, &json))
}

/// The OAuth2 `POST` to the realm: `grant_type=refresh_token` with an identity token,
/// `grant_type=password` with a user and password.
async fn post_token(
    realm: &Realm,
    request: &FetchTokenRequest,
    credentials: &Credentials,
) -> Result<FetchTokenResponse, TokenError> {
    let client_id = if request.client_id.is_empty() {
        CLIENT_ID
    } else {
        &request.client_id
    };
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("scope", &request.scopes.join(" "));
        form.append_pair("service", &request.service);
        form.append_pair("client_id", client_id);
        match credentials {
            Credentials::IdentityToken(token) => {
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", token.expose());
            }
            Credentials::Basic { username, password } => {
                form.append_pair("grant_type", "password");
                form.append_pair("username", username);
                form.append_pair("password", password.expose());
            }
        }
        form.finish()
    };
    let http = hyper::Request::post(realm.path.clone())
        .header(hyper::header::HOST, &realm.authority)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| TokenError::Http(Box::new(e)))?;
    let json = exchange(realm, http).await?;
    let token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or(TokenError::NoToken)?;
    Ok(token_response(token, &json))
}

fn token_response(token: &str, json: &Value) -> FetchTokenResponse {
    let expires_in = json
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|seconds| *seconds > 0)
        .unwrap_or(DEFAULT_EXPIRATION);
    FetchTokenResponse {
        token: token.to_owned(),
        expires_in,
        issued_at: 0,
    }
}

/// Sends `request` to the realm's server on a connection of its own; the `200` answer's JSON.
async fn exchange(
    realm: &Realm,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Value, TokenError> {
    let http = |e: Box<dyn std::error::Error + Send + Sync>| TokenError::Http(e);
    let stream = tokio::net::TcpStream::connect(&realm.address)
        .await
        .map_err(|e| http(Box::new(e)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(Box::new(e)))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(Box::new(e)))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        if status != 200 {
            return Err(TokenError::Status { status });
        }
        serde_json::from_slice::<Value>(&body).map_err(|_| TokenError::NoToken)
    }
    .await;
    driver.abort();
    result
}

/// An `http://` realm: its authority (the `Host` header), where to connect, the request target.
#[derive(Debug)]
struct Realm {
    authority: String,
    address: String,
    path: String,
}

impl Realm {
    fn parse(realm: &str) -> Result<Self, TokenError> {
        if realm.len() >= 8 && realm[..8].eq_ignore_ascii_case("https://") {
            return Err(TokenError::HttpsRealm);
        }
        let rest = realm
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &realm[7..])
            .ok_or(TokenError::InvalidRealm)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(TokenError::InvalidRealm);
        }
        let has_port = !authority.ends_with(']')
            && authority.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
        let address = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Realm {
            authority: authority.to_owned(),
            address,
            path,
        })
    }
}

#[cfg(test)]
mod tests;
