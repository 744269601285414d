//! The session's in-process SSH agent: `--ssh ID=KEY_FILE[,KEY_FILE…]` serves private key
//! files, as buildx does (BuildKit's `sshprovider` loads them into an agent keyring of its own).
//!
//! [`Keyring::load`] parses the files when the session is set up; `ForwardAgent` then speaks the
//! SSH agent protocol (draft-miller-ssh-agent) on its byte stream, answered by
//! [`Keyring::answer`]. The framing is hand-written: a `uint32` length before each message, and
//! of the messages only `REQUEST_IDENTITIES` and `SIGN_REQUEST` are served (everything else is
//! `FAILURE`) — a few dozen lines, sans-IO and unit-tested, where an agent crate would bring a
//! server, a runtime integration and key management the session does not need. Key parsing and
//! signing are RustCrypto's `ssh-key` (OpenSSH format, Ed25519).
//!
//! Key material never leaves [`Keyring`]: its `Debug` shows the keys' fingerprints, and the
//! errors name the file, never its contents.

use std::fmt;
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, HashAlg, PrivateKey, SigningKey};

/// `SSH_AGENT_FAILURE`.
pub(crate) const FAILURE: u8 = 5;
/// `SSH_AGENTC_REQUEST_IDENTITIES`.
pub(crate) const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENT_IDENTITIES_ANSWER`.
pub(crate) const IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENTC_SIGN_REQUEST`.
pub(crate) const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENT_SIGN_RESPONSE`.
pub(crate) const SIGN_RESPONSE: u8 = 14;

/// The largest message the agent reads (OpenSSH's agent takes 256 KiB); a longer one ends the
/// connection.
pub(crate) const MAX_MESSAGE: u32 = 256 * 1024;

/// Why a key file cannot be served (`SessionError::SshKey*` says it to the user).
#[derive(Debug)]
pub(crate) enum KeyFileError {
    /// The file cannot be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not an OpenSSH private key.
    NotAKey { path: PathBuf },
    /// The key is protected by a passphrase; nothing here prompts.
    Encrypted { path: PathBuf },
    /// A key of another algorithm than Ed25519.
    Algorithm { path: PathBuf, algorithm: String },
}

/// The private keys one agent id serves.
pub(crate) struct Keyring {
    keys: Vec<PrivateKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.keys
                    .iter()
                    .map(|key| key.fingerprint(HashAlg::Sha256).to_string()),
            )
            .finish()
    }
}

impl Keyring {
    /// Parses the private key files `paths`.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Self, KeyFileError> {
        let keys = paths
            .iter()
            .map(|path| load_key(path))
            .collect::<Result<_, _>>()?;
        Ok(Keyring { keys })
    }

    /// A keyring of `keys` (tests).
    #[cfg(test)]
    pub(crate) fn from_keys(keys: Vec<PrivateKey>) -> Self {
        Keyring { keys }
    }

    /// The answer to one agent message (`body`: the message without its length), without its
    /// length either.
    pub(crate) fn answer(&self, body: &[u8]) -> Vec<u8> {
        let answer = match body.split_first() {
            Some((&REQUEST_IDENTITIES, [])) => Some(self.identities()),
            Some((&SIGN_REQUEST, rest)) => self.sign(rest),
            _ => None,
        };
        answer.unwrap_or_else(|| vec![FAILURE])
    }

    fn identities(&self) -> Vec<u8> {
        let mut out = vec![IDENTITIES_ANSWER];
        put_u32(&mut out, self.keys.len() as u32);
        for key in &self.keys {
            // Only keys that encode are loaded (`load_key`).
            let blob = key.public_key().to_bytes().unwrap_or_default();
            put_string(&mut out, &blob);
            put_string(&mut out, key.comment().as_bytes());
        }
        out
    }

    /// `string key_blob, string data, uint32 flags` → `SIGN_RESPONSE` with
    /// `string(string algorithm, string signature)`; `None` (a `FAILURE`) for a key not held,
    /// a malformed request or a failed signature. The flags (`rsa-sha2-256/512`) choose the
    /// hash of RSA signatures only; Ed25519 signatures have none, so they are read and ignored.
    fn sign(&self, mut rest: &[u8]) -> Option<Vec<u8>> {
        let blob = take_string(&mut rest)?;
        let data = take_string(&mut rest)?;
        let _flags = take_u32(&mut rest)?;
        if !rest.is_empty() {
            return None;
        }
        let key = self
            .keys
            .iter()
            .find(|key| key.public_key().to_bytes().ok().as_deref() == Some(blob))?;
        let signature = sign_with(key, data)?;
        let mut inner = Vec::new();
        put_string(&mut inner, signature.algorithm().as_str().as_bytes());
        put_string(&mut inner, signature.as_bytes());
        let mut out = vec![SIGN_RESPONSE];
        put_string(&mut out, &inner);
        Some(out)
    }
}

fn sign_with<K: SigningKey>(key: &K, data: &[u8]) -> Option<ssh_key::Signature> {
    key.try_sign(data).ok()
}

fn load_key(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let text = std::fs::read(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = PrivateKey::from_openssh(&text).map_err(|_| KeyFileError::NotAKey {
        path: path.to_path_buf(),
    })?;
    if key.is_encrypted() {
        return Err(KeyFileError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    let algorithm = key.algorithm();
    if algorithm != Algorithm::Ed25519 || key.public_key().to_bytes().is_err() {
        return Err(KeyFileError::Algorithm {
            path: path.to_path_buf(),
            algorithm: algorithm.as_str().to_string(),
        });
    }
    Ok(key)
}

/// Appends a big-endian `uint32`.
pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends an SSH `string`: its `uint32` length, then its bytes.
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Takes a `uint32` off the front of `input`.
pub(crate) fn take_u32(input: &mut &[u8]) -> Option<u32> {
    let (head, rest) = input.split_first_chunk::<4>()?;
    *input = rest;
    Some(u32::from_be_bytes(*head))
}

/// Takes an SSH `string` off the front of `input`.
pub(crate) fn take_string<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(input)? as usize;
    if input.len() < len {
        return None;
    }
    let (string, rest) = input.split_at(len);
    *input = rest;
    Some(string)
}

/// Serves the agent protocol on `stream` until it ends, a message is longer than
/// [`MAX_MESSAGE`] or writing fails.
pub(crate) async fn serve<S>(keyring: std::sync::Arc<Keyring>, mut stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    loop {
        let mut len = [0; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len);
        if len > MAX_MESSAGE {
            return;
        }
        let mut body = vec![0; len as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer = keyring.answer(&body);
        let mut framed = Vec::with_capacity(answer.len() + 4);
        put_string(&mut framed, &answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::{Ed25519Keypair, KeypairData};

    /// `ssh-keygen -t ed25519 -N passphrase -C enc@test`: a throwaway key made for this test.
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBP/NBviC
QPOTVGTOMYhHosAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFZoEU3Oq+rkuuye
8DIEBvNhPLAt5bWw8BLpJN8qKcBZAAAAkBFFtZ78ifhzM1KKOQD2are2ONxbroGOjs/izh
4WkWJsL/u+qDHE5kMbY572j9RN85bgZTBV88CnK1Tcd2XhnmMcWkQLIyzJRIJ14o9hvffp
e41g6zW98gMKe81fk9ZIy5UThRt8tM2wqssLVU/Fq3GoqcQvghyrnAslEVSnGFmSc0wGCZ
7mTZod+gGFkhjC1w==
-----END OPENSSH PRIVATE KEY-----
";

    fn key(seed: u8, comment: &str) -> PrivateKey {
        let pair = Ed25519Keypair::from_seed(&[seed; 32]);
        PrivateKey::new(KeypairData::Ed25519(pair), comment).unwrap()
    }

    fn sign_request(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut body = vec![SIGN_REQUEST];
        put_string(&mut body, blob);
        put_string(&mut body, data);
        put_u32(&mut body, flags);
        body
    }

    #[test]
    fn identities_answer_lists_every_public_key_and_comment() {
        let (a, b) = (key(1, "a@host"), key(2, "b@host"));
        let ring = Keyring::from_keys(vec![a.clone(), b.clone()]);
        let answer = ring.answer(&[REQUEST_IDENTITIES]);
        let mut rest = &answer[..];
        assert_eq!(rest.split_first().map(|(t, _)| *t), Some(IDENTITIES_ANSWER));
        rest = &rest[1..];
        assert_eq!(take_u32(&mut rest), Some(2));
        for key in [a, b] {
            assert_eq!(
                take_string(&mut rest),
                Some(&key.public_key().to_bytes().unwrap()[..])
            );
            assert_eq!(take_string(&mut rest), Some(key.comment().as_bytes()));
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn a_sign_request_yields_a_signature_that_verifies() {
        let (a, b) = (key(1, "a"), key(2, "b"));
        let ring = Keyring::from_keys(vec![a, b.clone()]);
        let blob = b.public_key().to_bytes().unwrap();
        let data = b"session id and userauth request";
        // SSH_AGENT_RSA_SHA2_256 (2): ignored for Ed25519.
        for flags in [0, 2, 4] {
            let answer = ring.answer(&sign_request(&blob, data, flags));
            let mut rest = &answer[1..];
            assert_eq!(answer[0], SIGN_RESPONSE);
            let mut inner = take_string(&mut rest).unwrap();
            assert!(rest.is_empty());
            assert_eq!(take_string(&mut inner), Some(&b"ssh-ed25519"[..]));
            let raw = take_string(&mut inner).unwrap();
            assert!(inner.is_empty());
            let signature = ssh_key::Signature::new(Algorithm::Ed25519, raw).unwrap();
            signature::Verifier::verify(b.public_key(), data, &signature).unwrap();
            assert!(
                signature::Verifier::verify(b.public_key(), b"other data", &signature).is_err()
            );
        }
    }

    #[test]
    fn anything_else_is_a_failure() {
        let ring = Keyring::from_keys(vec![key(1, "a")]);
        let unknown = key(3, "not held").public_key().to_bytes().unwrap();
        let held = key(1, "a").public_key().to_bytes().unwrap();
        let mut truncated = sign_request(&held, b"data", 0);
        truncated.pop();
        let mut trailing = sign_request(&held, b"data", 0);
        trailing.push(0);
        for body in [
            vec![],
            vec![17],                           // ADD_IDENTITY
            vec![REQUEST_IDENTITIES, 0],        // trailing bytes
            vec![IDENTITIES_ANSWER],            // an answer, not a request
            sign_request(&unknown, b"data", 0), // a key not held
            truncated,
            trailing,
        ] {
            assert_eq!(ring.answer(&body), [FAILURE], "{body:?}");
        }
    }

    #[tokio::test]
    async fn serve_frames_answers_and_stops_at_an_oversized_message() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let ring = std::sync::Arc::new(Keyring::from_keys(vec![key(1, "a")]));
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(serve(ring, server));
        client.write_all(&[0, 0, 0, 1, 99]).await.unwrap();
        let mut answer = [0; 5];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [0, 0, 0, 1, FAILURE]);
        client
            .write_all(&(MAX_MESSAGE + 1).to_be_bytes())
            .await
            .unwrap();
        task.await.unwrap();
        assert_eq!(client.read(&mut answer).await.unwrap(), 0);
    }

    #[test]
    fn key_files_are_parsed_and_their_errors_name_the_file_never_the_key() {
        let dir = std::env::temp_dir().join(format!("bktrace-agent-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("id_ed25519");
        let private = key(7, "me@host");
        let text = private.to_openssh(ssh_key::LineEnding::LF).unwrap();
        std::fs::write(&good, text.as_bytes()).unwrap();
        let ring = Keyring::load(std::slice::from_ref(&good)).unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains("SHA256:"), "{debug}");
        // The key's base64 body and its raw private bytes appear nowhere.
        let body_line = text.lines().nth(1).unwrap();
        assert!(!debug.contains(body_line), "{debug}");
        let KeypairData::Ed25519(pair) = private.key_data() else {
            unreachable!()
        };
        let secret_hex: String = pair
            .private
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!debug.contains(&secret_hex[..16]), "{debug}");

        let garbage = dir.join("garbage");
        std::fs::write(&garbage, "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n").unwrap();
        let missing = dir.join("missing");
        let encrypted = dir.join("id_encrypted");
        std::fs::write(&encrypted, ENCRYPTED_KEY).unwrap();
        let load = |path: &PathBuf| Keyring::load(&[good.clone(), path.clone()]).unwrap_err();
        assert!(matches!(load(&garbage), KeyFileError::NotAKey { path, .. } if path == garbage));
        assert!(matches!(load(&missing), KeyFileError::Read { path, .. } if path == missing));
        let err = load(&encrypted);
        assert!(matches!(&err, KeyFileError::Encrypted { path } if *path == encrypted));
        assert!(!format!("{err:?}").contains("b3BlbnNzaC1rZXkt"), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
