//! Image reference normalisation following Docker's reference grammar
//! (`github.com/distribution/reference`, used by Docker and BuildKit):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]            host: DNS labels or [IPv6]
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex
//! ```
//!
//! The first `/`-separated component is a registry when it contains `.` or
//! `:`, is `localhost`, or has an upper-case letter; otherwise the image is on
//! Docker Hub (`docker.io`), where one-component names live under
//! `library/`. Without a tag and without a digest, the tag is `latest`.

/// Why [`normalize`] rejected a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error("empty image reference")]
    Empty,
    /// A 64-character hexadecimal string, which Docker refuses as a
    /// repository name because it could be an image ID.
    #[error(
        "invalid reference `{0}`: a 64-character hexadecimal string is an image ID, not a repository name"
    )]
    ImageId(String),
    /// The repository path has upper-case letters (only the registry may).
    #[error("invalid reference `{0}`: repository name must be lowercase")]
    Uppercase(String),
    /// The repository name (registry and path) is longer than 255 characters.
    #[error("invalid reference `{0}`: repository name must not be more than 255 characters")]
    NameTooLong(String),
    /// The digest's algorithm is not one Docker supports (sha256, sha384,
    /// sha512) or its hex part has the wrong length or case.
    #[error("invalid reference `{reference}`: {reason}")]
    Digest {
        /// The reference as given.
        reference: String,
        /// What is wrong with the digest.
        reason: String,
    },
    /// Any other violation of the reference grammar.
    #[error("invalid reference `{reference}`: {reason}")]
    Format {
        /// The reference as given.
        reference: String,
        /// Which part of the grammar is violated.
        reason: &'static str,
    },
}

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Normalises an image reference to its fully qualified form, as Docker does
/// before pulling it.
///
/// ```
/// use dockerfile_analysis::normalize;
///
/// assert_eq!(normalize("busybox").unwrap(), "docker.io/library/busybox:latest");
/// assert_eq!(normalize("user/img:1").unwrap(), "docker.io/user/img:1");
/// assert_eq!(normalize("ghcr.io/x/y").unwrap(), "ghcr.io/x/y:latest");
/// assert_eq!(normalize("localhost:5000/x").unwrap(), "localhost:5000/x:latest");
/// let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// assert_eq!(
///     normalize(&format!("img@{digest}")).unwrap(),
///     format!("docker.io/library/img@{digest}")
/// );
/// assert_eq!(
///     normalize(&format!("img:1.0@{digest}")).unwrap(),
///     format!("docker.io/library/img:1.0@{digest}")
/// );
/// assert!(normalize("Busybox").is_err());
/// ```
///
/// # Errors
///
/// A [`ReferenceError`] when `reference` does not follow the grammar above.
pub fn normalize(reference: &str) -> Result<String, ReferenceError> {
    let format = |reason| ReferenceError::Format {
        reference: reference.to_owned(),
        reason,
    };
    if reference.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if reference.len() == 64
        && reference
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ReferenceError::ImageId(reference.to_owned()));
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        check_digest(reference, d)?;
    }
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return Err(format("invalid tag"));
        }
    }
    if name.is_empty() {
        return Err(format("missing repository name"));
    }
    let (domain, path) = split_domain(name);
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(reference.to_owned()));
    }
    if !is_domain(domain) {
        return Err(format("invalid registry host"));
    }
    if !path.split('/').all(is_path_component) {
        return Err(format("invalid repository path"));
    }
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong(reference.to_owned()));
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

fn split_domain(name: &str) -> (&str, String) {
    let (mut domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN;
    }
    let mut path = remainder.to_owned();
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path.insert_str(0, OFFICIAL_REPO_PREFIX);
    }
    (domain, path)
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| is_alnum_lower(c as char);
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or a run of "-", between alphanumerics.
        let sep_len = match b[i] {
            b'.' => 1,
            b'_' if b.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => b[i..].iter().take_while(|&&c| c == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        if !b.get(i).is_some_and(|&c| alnum(c)) {
            return false;
        }
    }
    true
}

fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.is_empty() || !ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    })
}

fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    chars.next().is_some_and(word)
        && t.len() <= 128
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

fn check_digest(reference: &str, digest: &str) -> Result<(), ReferenceError> {
    let err = |reason: String| ReferenceError::Digest {
        reference: reference.to_owned(),
        reason,
    };
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(err("digest must be `algorithm:hex`".to_owned()));
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => return Err(err(format!("unsupported digest algorithm `{other}`"))),
    };
    if hex.len() != want || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(err(format!(
            "{algorithm} digest must be {want} lowercase hexadecimal characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_names() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("busybox:1.36").unwrap(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            normalize("library/busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("docker.io/busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("index.docker.io/busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize("user/img:1").unwrap(), "docker.io/user/img:1");
        assert_eq!(normalize("a/b/c").unwrap(), "docker.io/a/b/c:latest");
    }

    #[test]
    fn registries() {
        assert_eq!(normalize("ghcr.io/x/y").unwrap(), "ghcr.io/x/y:latest");
        assert_eq!(normalize("localhost/x").unwrap(), "localhost/x:latest");
        assert_eq!(
            normalize("localhost:5000/x").unwrap(),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize("localhost:5000/x:2").unwrap(),
            "localhost:5000/x:2"
        );
        assert_eq!(normalize("[::1]:5000/x").unwrap(), "[::1]:5000/x:latest");
        // Upper case makes the first component a registry host.
        assert_eq!(normalize("Registry/x").unwrap(), "Registry/x:latest");
        // `localhost` alone, without a path, is a Docker Hub image.
        assert_eq!(
            normalize("localhost").unwrap(),
            "docker.io/library/localhost:latest"
        );
    }

    #[test]
    fn digests() {
        assert_eq!(
            normalize(&format!("img@{D}")).unwrap(),
            format!("docker.io/library/img@{D}")
        );
        assert_eq!(
            normalize(&format!("img:tag@{D}")).unwrap(),
            format!("docker.io/library/img:tag@{D}")
        );
        assert!(matches!(
            normalize("img@sha256:abc"),
            Err(ReferenceError::Digest { .. })
        ));
        assert!(matches!(
            normalize("img@md5:0123456789abcdef0123456789abcdef"),
            Err(ReferenceError::Digest { .. })
        ));
        assert!(matches!(
            normalize(&format!("img@{}", D.to_uppercase().replace("SHA", "sha"))),
            Err(ReferenceError::Digest { .. })
        ));
    }

    #[test]
    fn invalid_references() {
        assert_eq!(normalize(""), Err(ReferenceError::Empty));
        assert_eq!(
            normalize("Busybox"),
            Err(ReferenceError::Uppercase("Busybox".into()))
        );
        assert!(matches!(
            normalize(&"a".repeat(64).replace('a', "f")),
            Err(ReferenceError::ImageId(_))
        ));
        for bad in [
            "img:",
            "img:-x",
            "-img",
            "img-",
            "a//b",
            "a__-b",
            "ghcr.io/",
            "host:port/x",
            "img:tag:tag",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        assert!(normalize(&format!("{}:1", "a".repeat(300))).is_err());
        assert!(normalize(&format!("img:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2-c3"] {
            assert!(normalize(ok).is_ok(), "{ok}");
        }
        for bad in ["a..b", "a___b", "a.-b", ".a", "a."] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
