//! The store's cryptography: argon2 password hashes, SHA-256 token digests, XChaCha20-Poly1305 secrets, random ids and tokens.

use crate::config::SecretKey;
use crate::error::StoreError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// Nonce length of XChaCha20-Poly1305: random nonces are safe at this size.
const NONCE_LEN: usize = 24;
/// First byte of every ciphertext: the layout version, so the scheme can change later.
const CIPHERTEXT_VERSION: u8 = 1;

/// Encrypts and decrypts secrets with the operator key. A ciphertext is
/// `version || nonce || ciphertext+tag`, bound to a context string (table and row) as associated
/// data, so a ciphertext copied to another row does not decrypt there.
#[derive(Clone)]
pub(crate) struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    pub(crate) fn new(key: &SecretKey) -> Self {
        let key = Key::from(*key.as_bytes());
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = XNonce::generate();
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Invalid("secret too large to encrypt".to_owned()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(CIPHERTEXT_VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub(crate) fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let undecryptable =
            || StoreError::corrupt("a secret cannot be decrypted (wrong operator key?)");
        let (&version, rest) = sealed.split_first().ok_or_else(undecryptable)?;
        if version != CIPHERTEXT_VERSION || rest.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| undecryptable())?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| undecryptable())
    }

    pub(crate) fn seal_text(&self, context: &str, plaintext: &str) -> Result<Vec<u8>, StoreError> {
        self.seal(context, plaintext.as_bytes())
    }

    pub(crate) fn open_text(&self, context: &str, sealed: &[u8]) -> Result<String, StoreError> {
        String::from_utf8(self.open(context, sealed)?)
            .map_err(|_| StoreError::corrupt("a decrypted secret is not UTF-8"))
    }
}

/// An argon2id PHC string for `password` (random salt, default parameters).
pub(crate) fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| StoreError::Invalid(format!("password cannot be hashed: {err}")))
}

/// Whether `password` matches the PHC string `hash` (constant-time inside argon2).
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// SHA-256 of a bearer token: what the database keeps instead of the token.
pub(crate) fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `len` random bytes as lowercase hex.
pub(crate) fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// A fresh 32-hex identifier (CodeArts ids: projects, pipelines, runs, stage/job/step runs, …).
///
/// A UUIDv7: its first 48 bits are the time in milliseconds, so ids made one after another
/// sort together and a new row's index entries land on the last page of each index instead
/// of a random one (five indexes per run are keyed by such ids; random keys made each commit
/// write several more pages). Ids are not secrets: access is checked on every request, and
/// tokens are random (`random_hex`).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
