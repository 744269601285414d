//! `config.json` parsing, the CLI's lookup order and host matching, credential helpers (shell
//! scripts written by the tests into temporary directories, found through
//! [`DockerConfig::with_helper_path`]), and that no secret reaches `Debug` or an error.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use super::*;

const SECRET: &str = "s3cr3t-Pa55";

/// Held for writing while a helper script is being written, for reading while helpers run:
/// a process forked by another test while a script is still open for writing would keep the
/// file busy and make its exec fail with `ETXTBSY`. Every test of this crate that writes or
/// runs a helper goes through it; no other test starts a process.
static SCRIPTS: RwLock<()> = RwLock::new(());

/// A directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "docker-build-registry-auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Writes `docker-credential-<name>`, a `/bin/sh` script with `body` after the key read
    /// from stdin into `$key`.
    pub(crate) fn helper(&self, name: &str, body: &str) {
        let _writing = SCRIPTS.write().unwrap();
        let path = self.write(
            &format!("docker-credential-{name}"),
            &format!("#!/bin/sh\nIFS= read -r key || true\n{body}\n"),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn running_helpers() -> RwLockReadGuard<'static, ()> {
    SCRIPTS.read().unwrap()
}

fn basic(username: &str, password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: username.into(),
        password: Secret::new(password),
    })
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn config(json: &str) -> DockerConfig {
    DockerConfig::from_json(json.as_bytes()).unwrap()
}

#[test]
fn auths_entries_decode_as_the_cli_decodes_them() {
    let json = format!(
        r#"{{"auths": {{
            "a.example": {{"auth": "{a}"}},
            "b.example": {{"username": "bob", "password": "pw"}},
            "c.example": {{"auth": "{c}", "username": "ignored", "password": "ignored"}},
            "d.example": {{"username": "dora", "identitytoken": "refresh-token"}},
            "e.example": {{"auth": "{e}"}},
            "f.example": {{"username": "only-a-user"}},
            "g.example": {{}},
            "h.example": {{"auth": ""}}
        }}}}"#,
        a = b64("alice:pa:ss"),
        c = b64("carol:cpw"),
        e = b64("eve:epw\0\0"),
    );
    let config = config(&json);
    let get = |host| config.credentials(host).unwrap();
    assert_eq!(
        get("a.example"),
        basic("alice", "pa:ss"),
        "split at the first colon"
    );
    assert_eq!(get("b.example"), basic("bob", "pw"));
    assert_eq!(
        get("c.example"),
        basic("carol", "cpw"),
        "auth wins over the fields"
    );
    assert_eq!(
        get("d.example"),
        Some(Credentials::IdentityToken(Secret::new("refresh-token")))
    );
    assert_eq!(
        get("d.example").unwrap().username(),
        "",
        "buildx sends no user with a token"
    );
    assert_eq!(
        get("e.example"),
        basic("eve", "epw"),
        "NULs trimmed as the CLI does"
    );
    assert_eq!(get("f.example"), None, "no password, no token: anonymous");
    assert_eq!(get("g.example"), None);
    assert_eq!(get("h.example"), None);
    assert_eq!(get("unknown.example"), None);
}

#[test]
fn registry_hosts_match_as_the_cli_matches_them() {
    let json = format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{hub}"}},
            "https://legacy.example:5000/v1/": {{"auth": "{legacy}"}},
            "http://plain.example": {{"auth": "{plain}"}},
            "path.example/some/repo": {{"auth": "{path}"}},
            "127.0.0.1:5000": {{"auth": "{local}"}},
            "https://user@[::1]:5001/v2/": {{"auth": "{v6}"}}
        }}}}"#,
        hub = b64("hubuser:hubpw"),
        legacy = b64("old:oldpw"),
        plain = b64("plain:plainpw"),
        path = b64("pathuser:pathpw"),
        local = b64("local:localpw"),
        v6 = b64("six:sixpw"),
    );
    let config = config(&json);
    let get = |host| config.credentials(host).unwrap();
    for hub in [
        "registry-1.docker.io",
        "docker.io",
        "index.docker.io",
        DOCKER_HUB_KEY,
    ] {
        assert_eq!(get(hub), basic("hubuser", "hubpw"), "{hub}");
    }
    assert_eq!(get("legacy.example:5000"), basic("old", "oldpw"));
    assert_eq!(get("legacy.example"), None, "the port is part of the host");
    assert_eq!(get("plain.example"), basic("plain", "plainpw"));
    assert_eq!(get("path.example"), basic("pathuser", "pathpw"));
    assert_eq!(get("127.0.0.1:5000"), basic("local", "localpw"));
    assert_eq!(get("https://127.0.0.1:5000/v2/"), basic("local", "localpw"));
    assert_eq!(get("127.0.0.1:5001"), None);
    assert_eq!(get("[::1]:5001"), basic("six", "sixpw"));
}

#[test]
fn auth_keys() {
    assert_eq!(auth_key("registry-1.docker.io"), DOCKER_HUB_KEY);
    assert_eq!(auth_key("docker.io"), DOCKER_HUB_KEY);
    assert_eq!(auth_key("index.docker.io"), DOCKER_HUB_KEY);
    assert_eq!(auth_key("https://index.docker.io/v1/"), DOCKER_HUB_KEY);
    assert_eq!(auth_key("ghcr.io"), "ghcr.io");
    assert_eq!(auth_key("localhost:5000"), "localhost:5000");
    assert_eq!(auth_key("http://localhost:5000/v2/x"), "localhost:5000");
    assert_eq!(auth_key("localhost:5000/repo"), "localhost:5000");
}

#[test]
fn the_configuration_is_found_as_the_cli_finds_it() {
    let home = TempDir::new();
    std::fs::create_dir(home.path().join(".docker")).unwrap();
    std::fs::write(
        home.path().join(".docker/config.json"),
        r#"{"auths": {"home.example": {"username": "h", "password": "hp"}}}"#,
    )
    .unwrap();
    let other = TempDir::new();
    other.write(
        "config.json",
        r#"{"auths": {"other.example": {"username": "o", "password": "op"}}}"#,
    );
    let home_path = home.path().to_str().unwrap().to_owned();
    let other_path = other.path().to_str().unwrap().to_owned();

    let from_home = DockerConfig::from_vars(|name| (name == "HOME").then(|| home_path.clone()));
    let from_home = from_home.unwrap();
    assert_eq!(
        from_home.path(),
        Some(&*home.path().join(".docker/config.json"))
    );
    assert_eq!(
        from_home.credentials("home.example").unwrap(),
        basic("h", "hp")
    );

    let both = DockerConfig::from_vars(|name| match name {
        "HOME" => Some(home_path.clone()),
        "DOCKER_CONFIG" => Some(other_path.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(both.credentials("other.example").unwrap(), basic("o", "op"));
    assert_eq!(both.credentials("home.example").unwrap(), None);

    let empty_var = DockerConfig::from_vars(|name| match name {
        "HOME" => Some(home_path.clone()),
        "DOCKER_CONFIG" => Some(String::new()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        empty_var.credentials("home.example").unwrap(),
        basic("h", "hp")
    );

    let nothing = DockerConfig::from_vars(|_| None).unwrap();
    assert_eq!(nothing.path(), None);
    assert_eq!(nothing.credentials("home.example").unwrap(), None);

    // A missing file and an empty one are empty configurations.
    let missing = DockerConfig::from_path(other.path().join("absent.json")).unwrap();
    assert_eq!(missing.credentials("other.example").unwrap(), None);
    let blank = other.write("blank.json", " \n");
    assert_eq!(
        DockerConfig::from_path(blank)
            .unwrap()
            .credentials("x")
            .unwrap(),
        None
    );
}

/// Every message of the chain, as a CLI prints it on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

#[test]
fn a_broken_configuration_is_one_clear_error_without_its_secrets() {
    let dir = TempDir::new();
    let load = |json: &str| {
        let path = dir.write("config.json", json);
        let error = DockerConfig::from_path(&path).unwrap_err();
        let text = chain(&error);
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(&*path.to_string_lossy()), "{text}");
        (error, text)
    };

    let (error, text) = load(&format!(r#"{{"auths": {{"x": {{"password": "{SECRET}"}}"#));
    assert!(matches!(error, ConfigError::Json { .. }), "{error:?}");
    assert!(
        text.contains("is not valid JSON: EOF while parsing an object at line 1"),
        "{text}"
    );

    let (error, text) = load(&format!(r#"{{"auths": {{"x.example": "{SECRET}"}}}}"#));
    assert!(matches!(error, ConfigError::Field { .. }), "{error:?}");
    assert!(
        text.ends_with(r#": auths."x.example" is not an object"#),
        "{text}"
    );

    let (_, text) = load(&format!(
        r#"{{"auths": {{"x.example": {{"password": ["{SECRET}"]}}}}}}"#
    ));
    assert!(
        text.ends_with(r#": auths."x.example".password is not a string"#),
        "{text}"
    );

    let (_, text) = load(r#"{"auths": []}"#);
    assert!(text.ends_with(": auths is not an object"), "{text}");
    let (_, text) = load(r#"{"credHelpers": {"x.example": 1}}"#);
    assert!(
        text.ends_with(r#": credHelpers."x.example" is not a string"#),
        "{text}"
    );
    let (_, text) = load("[]");
    assert!(text.ends_with(": the top level is not an object"), "{text}");

    // Not base64, and base64 of something without a colon or user: named by key, not value.
    for auth in [
        format!("{SECRET}!!"),
        b64(SECRET),
        b64(&format!(":{SECRET}")),
    ] {
        let (error, text) = load(&format!(
            r#"{{"auths": {{"x.example": {{"auth": "{auth}"}}}}}}"#
        ));
        assert!(
            matches!(error, ConfigError::InvalidAuth { .. }),
            "{error:?}"
        );
        assert!(
            text.ends_with(r#": the auth of "x.example" is not base64 of user:password"#),
            "{text}"
        );
        assert!(!text.contains(&auth), "{text}");
    }

    let unreadable = DockerConfig::from_path(dir.path()).unwrap_err();
    assert!(
        matches!(unreadable, ConfigError::Read { .. }),
        "{unreadable:?}"
    );
    let text = chain(&unreadable);
    assert!(
        text.starts_with("cannot read the Docker configuration "),
        "{text}"
    );
}

#[test]
fn a_creds_store_helper_is_asked_with_the_key_on_stdin() {
    let dir = TempDir::new();
    dir.helper(
        "test",
        &format!(
            r#"[ "$1" = get ] || exit 3
case "$key" in
  127.0.0.1:5000) printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"{SECRET}"}}' "$key" ;;
  https://index.docker.io/v1/) echo '{{"ServerURL":"hub","Username":"<token>","Secret":"hub-token"}}' ;;
  empty.example) echo '{{"ServerURL":"empty.example","Username":"u","Secret":""}}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#
        ),
    );
    let json = r#"{"credsStore": "test", "auths": {"127.0.0.1:5000": {}, "plain.example": {"username": "u", "password": "p"}}}"#;
    let config = config(json).with_helper_path(dir.path());
    let _running = running_helpers();
    assert_eq!(
        config.credentials("127.0.0.1:5000").unwrap(),
        basic("helper-user", SECRET)
    );
    assert_eq!(
        config.credentials("registry-1.docker.io").unwrap(),
        Some(Credentials::IdentityToken(Secret::new("hub-token"))),
        "Docker Hub is asked for under its key; <token> is an identity token"
    );
    assert_eq!(
        config.credentials("unknown.example").unwrap(),
        None,
        "not found: anonymous"
    );
    assert_eq!(config.credentials("empty.example").unwrap(), None);
    assert_eq!(
        config.credentials("plain.example").unwrap(),
        None,
        "with a store configured the CLI reads no plain auths"
    );
}

#[test]
fn cred_helpers_win_over_the_creds_store() {
    let dir = TempDir::new();
    dir.helper("store", r#"echo '{"Username":"from-store","Secret":"s"}'"#);
    dir.helper(
        "special",
        r#"echo '{"Username":"from-special","Secret":"x"}'"#,
    );
    let json = r#"{"credsStore": "store", "credHelpers": {"special.example:443": "special", "https://index.docker.io/v1/": "special"}}"#;
    let config = config(json).with_helper_path(dir.path());
    let _running = running_helpers();
    assert_eq!(
        config.credentials("special.example:443").unwrap(),
        basic("from-special", "x")
    );
    assert_eq!(
        config.credentials("docker.io").unwrap(),
        basic("from-special", "x")
    );
    assert_eq!(
        config.credentials("special.example").unwrap(),
        basic("from-store", "s")
    );

    let helpers_only = json.replace(r#""credsStore": "store", "#, "");
    let config = DockerConfig::from_json(helpers_only.as_bytes())
        .unwrap()
        .with_helper_path(dir.path());
    assert_eq!(
        config.credentials("special.example:443").unwrap(),
        basic("from-special", "x")
    );
    assert_eq!(config.credentials("other.example").unwrap(), None);
}

#[test]
fn a_failing_helper_is_named_with_its_first_line_and_without_the_secret() {
    let dir = TempDir::new();
    dir.helper(
        "broken",
        &format!("echo; echo '  keychain locked  '; echo '{SECRET}'; exit 2"),
    );
    dir.helper(
        "quiet",
        &format!("echo 'stderr says why' >&2; echo '{SECRET}' >&2; exit 1"),
    );
    dir.helper("garbage", &format!("echo '{{\"Secret\": [\"{SECRET}\"]}}'"));
    dir.helper("notjson", &format!("echo '{SECRET}'"));
    let with = |helper: &str| {
        config(&format!(r#"{{"credsStore": "{helper}"}}"#)).with_helper_path(dir.path())
    };
    let _running = running_helpers();
    let failure = |helper: &str| {
        let error = with(helper).credentials("x.example").unwrap_err();
        let text = chain(&error);
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains('\n'), "{text}");
        (error, text)
    };

    let (error, text) = failure("broken");
    assert!(
        matches!(error, CredentialsError::Failed { .. }),
        "{error:?}"
    );
    assert_eq!(
        text,
        "the credential helper docker-credential-broken failed (exit status: 2): keychain locked"
    );
    let (_, text) = failure("quiet");
    assert_eq!(
        text,
        "the credential helper docker-credential-quiet failed (exit status: 1): stderr says why"
    );
    let (error, text) = failure("garbage");
    assert!(
        matches!(error, CredentialsError::Output { .. }),
        "{error:?}"
    );
    assert!(
        text.ends_with("answered no credentials JSON: Secret is not a string"),
        "{text}"
    );
    let (_, text) = failure("notjson");
    assert!(
        text.contains("docker-credential-notjson answered no credentials JSON: "),
        "{text}"
    );
    let (error, text) = failure("absent");
    assert!(matches!(error, CredentialsError::Spawn { .. }), "{error:?}");
    assert!(
        text.starts_with("cannot run the credential helper docker-credential-absent: "),
        "{text}"
    );
}

#[test]
fn secrets_never_appear_in_debug() {
    let dir = TempDir::new();
    dir.helper(
        "dbg",
        &format!(r#"echo '{{"Username":"u","Secret":"{SECRET}"}}'"#),
    );
    let json = format!(
        r#"{{"auths": {{"a.example": {{"auth": "{}"}}, "b.example": {{"identitytoken": "{SECRET}"}}}},
            "credHelpers": {{"c.example": "dbg"}}}}"#,
        b64(&format!("user:{SECRET}"))
    );
    let config = config(&json).with_helper_path(dir.path());
    let _running = running_helpers();
    let found = ["a.example", "b.example", "c.example"].map(|host| {
        let credentials = config.credentials(host).unwrap().unwrap();
        assert_eq!(credentials.secret().expose(), SECRET);
        credentials
    });
    let debug = format!("{config:?} {found:?} {:#?}", found[0]);
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(debug.contains("a.example"), "{debug}");
}
