//! The peer handshake: before the first frame, both ends of a connection prove that they hold
//! the cluster's secret, and the acceptor learns which peer connected.
//!
//! The exchange, on a new connection from node `from` to node `to`:
//!
//! ```text
//! acceptor -> dialer   challenge: "RAFTAUTH" (8 bytes), then nonce_a (32 random bytes)
//! dialer -> acceptor   hello, one frame: u32 BE length 81, then
//!                        version 1 (1 byte), from (u64 BE), to (u64 BE),
//!                        nonce_d (32 random bytes), hello_mac (32 bytes)
//! acceptor -> dialer   accept_mac (32 bytes)
//! ```
//!
//! with `hello_mac = HMAC-SHA256(secret, "raft hello v1" | nonce_a | nonce_d | from | to)` and
//! `accept_mac = HMAC-SHA256(secret, "raft accept v1" | nonce_a | nonce_d | from | to)`. The
//! acceptor's fresh nonce makes a recorded hello useless on another connection; the dialer's
//! makes a recorded acceptance useless likewise. The hello is a frame so that a frame-aware
//! proxy on the path can carry it ([`is_hello_frame`] tells it apart); the acceptor reads at
//! most its 85 bytes before the proof, so an unauthenticated connection costs it nothing more.
//!
//! What this does not do: it authenticates the connection, not each frame, and encrypts
//! nothing. Someone who can change bytes on the path between two peers can still inject frames
//! after a handshake; against that, run the cluster on a network only its members reach, or
//! in a tunnel (see `docs/security.md`).

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::HEADER_LEN;
use crate::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// The first bytes an acceptor sends.
const CHALLENGE_MAGIC: &[u8; 8] = b"RAFTAUTH";
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
const VERSION: u8 = 1;
/// The hello's payload: version, from, to, the dialer's nonce, the MAC.
const HELLO_LEN: usize = 1 + 8 + 8 + NONCE_LEN + MAC_LEN;
const HELLO_LABEL: &[u8] = b"raft hello v1";
const ACCEPT_LABEL: &[u8] = b"raft accept v1";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The secret every member of a cluster holds. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// A secret of at least [`MIN_SECRET_LEN`] bytes.
    ///
    /// ```
    /// use raft::transport::ClusterSecret;
    /// assert!(ClusterSecret::new(b"0123456789abcdef".to_vec()).is_ok());
    /// assert!(ClusterSecret::new(b"short".to_vec()).is_err());
    /// ```
    pub fn new(bytes: Vec<u8>) -> Result<ClusterSecret, AuthError> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(AuthError::SecretTooShort { len: bytes.len() });
        }
        Ok(ClusterSecret(bytes))
    }

    /// Reads a secret from `path`; white space at either end (a final newline) is not part of
    /// it.
    pub fn from_file(path: &Path) -> Result<ClusterSecret, AuthError> {
        let bytes = std::fs::read(path)
            .map_err(|source| AuthError::SecretFile { path: path.to_path_buf(), source })?;
        let trimmed = bytes.trim_ascii();
        ClusterSecret::new(trimmed.to_vec()).map_err(|e| match e {
            AuthError::SecretTooShort { len } => {
                AuthError::SecretFileTooShort { path: path.to_path_buf(), len }
            }
            other => other,
        })
    }

    /// A fresh random secret of 32 bytes, written as 64 hexadecimal digits (for a secret file).
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, label: &[u8], nonces: (&[u8], &[u8]), from: NodeId, to: NodeId) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(label);
        mac.update(nonces.0);
        mac.update(nonces.1);
        mac.update(&from.to_be_bytes());
        mac.update(&to.to_be_bytes());
        mac
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret(<{} bytes>)", self.0.len())
    }
}

/// Why a handshake failed, or a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The secret is too short to be a secret.
    #[error("a cluster secret of {len} bytes; at least {MIN_SECRET_LEN} are needed")]
    SecretTooShort {
        /// Its length.
        len: usize,
    },
    /// The secret file holds too short a secret.
    #[error("{}: a cluster secret of {len} bytes; at least {MIN_SECRET_LEN} are needed", path.display())]
    SecretFileTooShort {
        /// The file.
        path: std::path::PathBuf,
        /// The secret's length.
        len: usize,
    },
    /// The secret file cannot be read.
    #[error("{}: cannot read the cluster secret: {source}", path.display())]
    SecretFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The other end did not start with the handshake.
    #[error("no handshake: the other end sent something else ({0})")]
    NotAHandshake(&'static str),
    /// The proof does not match: the other end does not hold the cluster's secret.
    #[error("wrong proof: the other end does not hold the cluster secret")]
    BadProof,
    /// The hello names another node as its destination.
    #[error("the hello is addressed to node {to}, not to this node ({me})")]
    WrongDestination {
        /// Whom it was for.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The hello claims to come from this node itself.
    #[error("the hello claims to come from this node ({0})")]
    FromSelf(NodeId),
    /// A handshake of a version this node does not speak.
    #[error("handshake version {0}, this node speaks {VERSION}")]
    Version(u8),
    /// The connection failed during the handshake.
    #[error("i/o error during the handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether a frame's payload is a handshake hello (for a proxy that forwards it untouched).
pub fn is_hello_frame(payload: &[u8]) -> bool {
    payload.len() == HELLO_LEN && payload[0] == VERSION
}

/// The acceptor's side: challenges the dialer, checks its hello, proves itself. Returns the
/// id of the authenticated peer.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    me: NodeId,
) -> Result<NodeId, AuthError> {
    let mut nonce_a = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce_a);
    let mut challenge = Vec::with_capacity(CHALLENGE_MAGIC.len() + NONCE_LEN);
    challenge.extend_from_slice(CHALLENGE_MAGIC);
    challenge.extend_from_slice(&nonce_a);
    stream.write_all(&challenge).await?;

    // The length is read first and must be the hello's: nothing longer is ever buffered.
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    if u32::from_be_bytes(header) as usize != HELLO_LEN {
        return Err(AuthError::NotAHandshake("a frame of another length than a hello"));
    }
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello).await?;
    if hello[0] != VERSION {
        return Err(AuthError::Version(hello[0]));
    }
    let from = u64::from_be_bytes(hello[1..9].try_into().expect("8 bytes"));
    let to = u64::from_be_bytes(hello[9..17].try_into().expect("8 bytes"));
    let nonce_d = &hello[17..17 + NONCE_LEN];
    let proof = &hello[17 + NONCE_LEN..];
    // The proof first: nothing the hello claims counts before it is verified.
    secret
        .mac(HELLO_LABEL, (&nonce_a, nonce_d), from, to)
        .verify_slice(proof)
        .map_err(|_| AuthError::BadProof)?;
    if to != me {
        return Err(AuthError::WrongDestination { to, me });
    }
    if from == me {
        return Err(AuthError::FromSelf(me));
    }
    let accept = secret.mac(ACCEPT_LABEL, (&nonce_a, nonce_d), from, to).finalize().into_bytes();
    stream.write_all(&accept).await?;
    Ok(from)
}

/// The dialer's side: answers the acceptor's challenge as node `from` reaching node `to`, and
/// checks the acceptor's proof.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &ClusterSecret,
    from: NodeId,
    to: NodeId,
) -> Result<(), AuthError> {
    let mut challenge = [0u8; CHALLENGE_MAGIC.len() + NONCE_LEN];
    stream.read_exact(&mut challenge).await?;
    if &challenge[..CHALLENGE_MAGIC.len()] != CHALLENGE_MAGIC {
        return Err(AuthError::NotAHandshake("no challenge from the acceptor"));
    }
    let nonce_a = &challenge[CHALLENGE_MAGIC.len()..];
    let mut nonce_d = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce_d);
    let mac = secret.mac(HELLO_LABEL, (nonce_a, &nonce_d), from, to).finalize().into_bytes();
    let mut hello = Vec::with_capacity(HEADER_LEN + HELLO_LEN);
    hello.extend_from_slice(&(HELLO_LEN as u32).to_be_bytes());
    hello.push(VERSION);
    hello.extend_from_slice(&from.to_be_bytes());
    hello.extend_from_slice(&to.to_be_bytes());
    hello.extend_from_slice(&nonce_d);
    hello.extend_from_slice(&mac);
    stream.write_all(&hello).await?;
    let mut proof = [0u8; MAC_LEN];
    stream.read_exact(&mut proof).await?;
    secret
        .mac(ACCEPT_LABEL, (nonce_a, &nonce_d), from, to)
        .verify_slice(&proof)
        .map_err(|_| AuthError::BadProof)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &[u8]) -> ClusterSecret {
        ClusterSecret::new(s.to_vec()).unwrap()
    }

    /// A handshake that stalls fails the test instead of hanging it.
    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(5), f)
            .await
            .expect("the handshake finished within 5 s")
    }

    #[tokio::test]
    async fn both_ends_holding_the_secret_agree_and_the_acceptor_learns_the_dialer() {
        let (mut a, mut d) = tokio::io::duplex(1024);
        let s = secret(b"the cluster secret");
        let (accepted, dialed) =
            bounded(async { tokio::join!(accept(&mut a, &s, 2), dial(&mut d, &s, 1, 2)) }).await;
        assert_eq!(accepted.unwrap(), 1);
        dialed.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_at_both_ends() {
        let (mut a, mut d) = tokio::io::duplex(1024);
        let (ours, theirs) = (secret(b"the cluster secret"), secret(b"an outsider's guess"));
        let acceptor = async move {
            let accepted = accept(&mut a, &ours, 2).await;
            drop(a); // the acceptor closes after a refusal
            accepted
        };
        let (accepted, dialed) =
            bounded(async { tokio::join!(acceptor, dial(&mut d, &theirs, 1, 2)) }).await;
        assert!(matches!(accepted, Err(AuthError::BadProof)), "{accepted:?}");
        // The acceptor closed without a proof.
        assert!(dialed.is_err());
    }

    #[tokio::test]
    async fn a_hello_for_another_node_is_refused() {
        let (mut a, mut d) = tokio::io::duplex(1024);
        let s = secret(b"the cluster secret");
        let acceptor = async {
            let accepted = accept(&mut a, &s, 3).await;
            drop(a);
            accepted
        };
        let (accepted, _) = bounded(async { tokio::join!(acceptor, dial(&mut d, &s, 1, 2)) }).await;
        assert!(matches!(accepted, Err(AuthError::WrongDestination { to: 2, me: 3 })));
    }

    #[tokio::test]
    async fn a_plain_frame_is_not_a_hello_and_nothing_long_is_buffered() {
        let (mut a, mut d) = tokio::io::duplex(1 << 16);
        let s = secret(b"the cluster secret");
        // A frame announcing 15 MiB: refused on its length alone.
        d.write_all(&(15u32 << 20).to_be_bytes()).await.unwrap();
        let accepted = bounded(accept(&mut a, &s, 2)).await;
        assert!(matches!(accepted, Err(AuthError::NotAHandshake(_))), "{accepted:?}");
    }

    #[test]
    fn secrets_are_long_enough_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        let s = ClusterSecret::from_file(&path).unwrap();
        assert_eq!(s, secret(b"0123456789abcdef"));
        assert!(!format!("{s:?}").contains("0123"));
        std::fs::write(&path, "short\n").unwrap();
        let err = ClusterSecret::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("secret") && err.contains("5 bytes"), "{err}");
        let err = ClusterSecret::from_file(&dir.path().join("none")).unwrap_err().to_string();
        assert!(err.contains("none"), "{err}");
        assert_eq!(ClusterSecret::generate_hex().len(), 64);
    }
}
