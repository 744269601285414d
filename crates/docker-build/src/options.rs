//! The parameters of `POST /build` (sans-IO): what to build, with which builder, and how to
//! decode the answer.

use crate::decode::DecoderConfig;

mod output;
mod session;

pub use output::{Output, OutputSpecError, TarDest};
pub use session::{
    DEFAULT_SSH_ID, MAX_SECRET_SIZE, Secret, SecretSource, SecretSpecError, SessionMode, SshAgent,
    SshSpecError,
};

/// Which of the daemon's builders runs the build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Builder {
    /// BuildKit (`version=2`): per-vertex records with times, logs and progress.
    #[default]
    BuildKit,
    /// The classic builder (`version=1`, still the API's default): text, mapped to the same
    /// events (each `Step N/M` a vertex).
    Classic,
}

/// What to build and how: the daemon's `POST /build` parameters, and how to decode the answer.
///
/// [`BuildOptions::query`] gives the query string, for any HTTP client; `build()` (feature
/// `daemon`) sends it and decodes the body with [`BuildOptions::decoder`].
///
/// ```
/// use docker_build::{BuildOptions, Builder};
///
/// let options = BuildOptions {
///     tags: vec!["app:dev".into()],
///     build_args: vec![("VERSION".into(), "1.2".into())],
///     no_cache: true,
///     ..Default::default()
/// };
/// assert_eq!(
///     options.query("Dockerfile"),
///     "version=2&dockerfile=Dockerfile&t=app%3Adev&buildargs=%7B%22VERSION%22%3A%221.2%22%7D&nocache=1&rm=1&forcerm=1"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Names for the image (`name:tag`), each sent as `t=`.
    pub tags: Vec<String>,
    /// `ARG` values, in order (later ones win).
    pub build_args: Vec<(String, String)>,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// Do not use the build cache.
    pub no_cache: bool,
    /// Always try to pull newer base images.
    pub pull: bool,
    /// Labels to set on the image.
    pub labels: Vec<(String, String)>,
    /// Target platform, e.g. `linux/amd64`.
    pub platform: Option<String>,
    /// BuildKit (default) or the classic builder.
    pub builder: Builder,
    /// Limits of the decoder of the response body (not sent to the daemon).
    pub decoder: DecoderConfig,
    /// The build's name in the daemon's build history (BuildKit ≥ 0.11, Docker 24), sent as
    /// the build argument `BUILDKIT_BUILD_NAME` (an explicit one in `build_args` wins). The
    /// daemon records a `/build` under a random ref it does not return: a unique name is how
    /// the build is found again (`docker_build::control::Control::find_build`, feature
    /// `control`).
    pub build_name: Option<String>,
    /// Secrets for `RUN --mount=type=secret` (buildx's `--secret`), served through a BuildKit
    /// session (feature `session`). A later secret with the same id replaces an earlier one.
    pub secrets: Vec<Secret>,
    /// SSH agents for `RUN --mount=type=ssh` (buildx's `--ssh`), forwarded through a BuildKit
    /// session (feature `session`).
    pub ssh: Vec<SshAgent>,
    /// Whether to serve a BuildKit session; by default one when [`secrets`](Self::secrets) or
    /// [`ssh`](Self::ssh) are given, or to send a directory context through it
    /// ([`context_transport`](Self::context_transport)).
    pub session: SessionMode,
    /// How the build context reaches the daemon: through the BuildKit session, as
    /// `docker buildx build` sends it, or as the tar body of `POST /build`.
    pub context_transport: ContextTransport,
    /// Where the result goes instead of an image (buildx's `--output`; the daemon takes at
    /// most one), received through a BuildKit session (feature `session`). With an output the
    /// daemon builds no image: the build succeeds when its body ends without an error and the
    /// output was written in full ([`BuildSummary::exported`](crate::BuildSummary)).
    pub outputs: Vec<Output>,
}

/// How the build context reaches the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextTransport {
    /// Through the session for a BuildKit build of a directory context (feature `session`,
    /// unless [`SessionMode::Never`]); when the daemon refuses the session, as the tar body
    /// (a build that needs a session for secrets or SSH agents fails instead). The tar body
    /// for the classic builder and for a tar context.
    #[default]
    Auto,
    /// Through the session (`remote=client-session`, served by FileSync): only the files
    /// BuildKit asks for are read, a rebuild sends only what changed, and the Dockerfile may
    /// be outside the context. The build fails when that is not possible (the classic
    /// builder, a tar context, no `session` feature, a refused session).
    Session,
    /// As the tar body of `POST /build`, as the classic `docker build` sends it.
    Tar,
}

/// The value of `remote` for a context served by the build's session.
pub const REMOTE_CLIENT_SESSION: &str = "client-session";

/// The build argument that names a build in BuildKit's history.
pub const BUILD_NAME_ARG: &str = "BUILDKIT_BUILD_NAME";

impl BuildOptions {
    /// The encoded query string for `POST /build`, with `dockerfile` the Dockerfile's path
    /// inside the context.
    pub fn query(&self, dockerfile: &str) -> String {
        self.query_with_session(dockerfile, None)
    }

    /// Whether this build serves a BuildKit session: with [`SessionMode::Auto`] when it has
    /// secrets, SSH agents or outputs, with [`SessionMode::Always`] and [`SessionMode::Prefer`] always,
    /// never for the classic builder or with [`SessionMode::Never`].
    ///
    /// ```
    /// use docker_build::{BuildOptions, Secret};
    ///
    /// assert!(!BuildOptions::default().wants_session());
    /// let options = BuildOptions { secrets: vec![Secret::env("t", "TOKEN")], ..Default::default() };
    /// assert!(options.wants_session());
    /// ```
    pub fn wants_session(&self) -> bool {
        self.builder == Builder::BuildKit
            && match self.session {
                SessionMode::Auto => self.needs_session(),
                SessionMode::Always | SessionMode::Prefer => true,
                SessionMode::Never => false,
            }
    }

    /// Whether the build asks for what only a session serves (secrets, SSH agents, outputs).
    pub fn needs_session(&self) -> bool {
        !self.secrets.is_empty() || !self.ssh.is_empty() || !self.outputs.is_empty()
    }

    /// [`BuildOptions::query`] for a build attached to the BuildKit session `session` (sent as
    /// `session=`, which the daemon hands to BuildKit as the solve's session).
    ///
    /// ```
    /// use docker_build::BuildOptions;
    ///
    /// let query = BuildOptions::default().query_with_session("Dockerfile", Some("k2r8d"));
    /// assert_eq!(query, "version=2&dockerfile=Dockerfile&session=k2r8d&rm=1&forcerm=1");
    /// ```
    pub fn query_with_session(&self, dockerfile: &str, session: Option<&str>) -> String {
        self.encode(dockerfile, session, false)
    }

    /// [`BuildOptions::query`] for a build whose context the session `session` serves
    /// (`remote=client-session`, no body), with `dockerfile` the Dockerfile's file name in its
    /// folder (the session's `dockerfile` folder).
    ///
    /// ```
    /// use docker_build::BuildOptions;
    ///
    /// let query = BuildOptions::default().query_with_session_context("Dockerfile", "k2r8d");
    /// assert_eq!(query, "version=2&dockerfile=Dockerfile&session=k2r8d&remote=client-session&rm=1&forcerm=1");
    /// ```
    pub fn query_with_session_context(&self, dockerfile: &str, session: &str) -> String {
        self.encode(dockerfile, Some(session), true)
    }

    fn encode(&self, dockerfile: &str, session: Option<&str>, remote: bool) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair(
            "version",
            match self.builder {
                Builder::BuildKit => "2",
                Builder::Classic => "1",
            },
        );
        q.append_pair("dockerfile", dockerfile);
        if let Some(session) = session {
            q.append_pair("session", session);
        }
        if remote {
            q.append_pair("remote", REMOTE_CLIENT_SESSION);
        }
        for tag in &self.tags {
            q.append_pair("t", tag);
        }
        let named = self
            .build_name
            .as_ref()
            .filter(|_| !self.build_args.iter().any(|(k, _)| k == BUILD_NAME_ARG))
            .map(|name| (BUILD_NAME_ARG.to_string(), name.clone()));
        if !self.build_args.is_empty() || named.is_some() {
            let args: Vec<(String, String)> = named
                .into_iter()
                .chain(self.build_args.iter().cloned())
                .collect();
            q.append_pair("buildargs", &json_object(&args));
        }
        if !self.labels.is_empty() {
            q.append_pair("labels", &json_object(&self.labels));
        }
        if let Some(target) = &self.target {
            q.append_pair("target", target);
        }
        if let Some(platform) = &self.platform {
            q.append_pair("platform", platform);
        }
        if self.no_cache {
            q.append_pair("nocache", "1");
        }
        if self.pull {
            q.append_pair("pull", "1");
        }
        if !self.outputs.is_empty() {
            q.append_pair("outputs", &output::outputs_json(&self.outputs));
        }
        // Remove the classic builder's intermediate containers, also after a failure, as the
        // docker CLI does.
        q.append_pair("rm", "1");
        q.append_pair("forcerm", "1");
        q.finish()
    }
}

fn json_object(pairs: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_name_is_a_build_arg_unless_one_is_given() {
        let named = BuildOptions {
            build_name: Some("web-1".into()),
            build_args: vec![("V".into(), "1".into())],
            ..Default::default()
        };
        let query = named.query("Dockerfile");
        let args: String = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "buildargs")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(args, r#"{"BUILDKIT_BUILD_NAME":"web-1","V":"1"}"#);

        let explicit = BuildOptions {
            build_name: Some("ignored".into()),
            build_args: vec![("BUILDKIT_BUILD_NAME".into(), "mine".into())],
            ..Default::default()
        };
        assert!(!explicit.query("Dockerfile").contains("ignored"));
        assert!(
            !BuildOptions::default()
                .query("Dockerfile")
                .contains("buildargs")
        );
    }
}
