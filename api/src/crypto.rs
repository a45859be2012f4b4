//! Key pairs for subjects and the sealing of private keys at rest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use crate::domain::PublicKeyLine;

/// A fresh key pair: the private half in OpenSSH PEM form, the public half as one OpenSSH line.
pub struct KeyPair {
    pub private_openssh: Zeroizing<String>,
    pub public: PublicKeyLine,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed: {0}")]
    KeyGen(String),
    #[error("sealed data is damaged or was sealed with another key")]
    Open,
}

/// Generates an ed25519 key pair from the operating system's random source.
pub fn generate_ed25519(comment: &str) -> Result<KeyPair, CryptoError> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    key.set_comment(comment);
    let private_openssh = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    // The line sent to instances carries no comment: the documents accept exactly `ssh-ed25519 <base64>`.
    let mut public = key.public_key().clone();
    public.set_comment("");
    let line = public
        .to_openssh()
        .map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    let public =
        PublicKeyLine::parse(line.trim()).map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    Ok(KeyPair {
        private_openssh: Zeroizing::new(private_openssh.to_string()),
        public,
    })
}

/// A one-time RSA-2048 key a Windows instance encrypts the password it generates to: the public
/// modulus (base64, as the document takes it) and the private key (PKCS#8 DER, to be sealed).
pub struct PasswordKey {
    pub public_modulus: String,
    pub private_der: Zeroizing<Vec<u8>>,
}

pub fn generate_password_key() -> Result<PasswordKey, CryptoError> {
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048)
        .map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    let modulus = key.n().to_bytes_be();
    if modulus.len() != 256 {
        return Err(CryptoError::KeyGen("RSA modulus is not 2048 bits".into()));
    }
    let der = key
        .to_pkcs8_der()
        .map_err(|e| CryptoError::KeyGen(e.to_string()))?;
    Ok(PasswordKey {
        public_modulus: STANDARD.encode(modulus),
        private_der: Zeroizing::new(der.as_bytes().to_vec()),
    })
}

/// Decrypts what a Windows instance printed (`base64(RSA-OAEP-SHA1(password))`).
pub fn decrypt_password(
    private_der: &[u8],
    ciphertext_b64: &str,
) -> Result<Zeroizing<String>, CryptoError> {
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_der(private_der).map_err(|_| CryptoError::Open)?;
    let ciphertext = STANDARD
        .decode(ciphertext_b64.trim())
        .map_err(|_| CryptoError::Open)?;
    let plain = key
        .decrypt(rsa::Oaep::new::<sha1::Sha1>(), &ciphertext)
        .map_err(|_| CryptoError::Open)?;
    String::from_utf8(plain)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// Authenticated encryption (XChaCha20-Poly1305) with the server's key. The associated data binds a
/// sealed value to its owner, so a sealed key copied to another subject's row does not open.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // XChaCha20-Poly1305 encryption only fails for messages beyond 256 GiB.
            .expect("encryption of a small message");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1:{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let body = sealed.strip_prefix("v1:").ok_or(CryptoError::Open)?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Open)?;
        if bytes.len() < 24 + 16 {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match() {
        let pair = generate_ed25519("gk test").unwrap();
        let private = PrivateKey::from_openssh(pair.private_openssh.as_str()).unwrap();
        let public = ssh_key::PublicKey::from_openssh(pair.public.as_str()).unwrap();
        assert_eq!(private.public_key().key_data(), public.key_data());
        let other = generate_ed25519("gk test").unwrap();
        assert_ne!(pair.public, other.public, "every key pair is fresh");
    }

    #[test]
    fn password_keys_round_trip_as_windows_encrypts() {
        use rsa::traits::PublicKeyParts;
        let key = generate_password_key().unwrap();
        assert!(
            regex::Regex::new(crate::domain::PASSWORD_KEY_PATTERN)
                .unwrap()
                .is_match(&key.public_modulus)
        );
        // Encrypt as the instance does: RSA-OAEP (SHA-1) to the modulus with exponent 65537.
        let n = rsa::BigUint::from_bytes_be(&STANDARD.decode(&key.public_modulus).unwrap());
        let public = rsa::RsaPublicKey::new(n, rsa::BigUint::from(65537u32)).unwrap();
        assert_eq!(public.n().bits(), 2048);
        let cipher = public
            .encrypt(&mut OsRng, rsa::Oaep::new::<sha1::Sha1>(), b"S3cret!pass")
            .unwrap();
        let plain = decrypt_password(&key.private_der, &STANDARD.encode(cipher)).unwrap();
        assert_eq!(plain.as_str(), "S3cret!pass");
        assert!(decrypt_password(&key.private_der, "AAAA").is_err());
    }

    #[test]
    fn sealing_round_trips_and_binds_context() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal(b"secret", "req/alice");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            sealer.open(&sealed, "req/alice").unwrap().as_slice(),
            b"secret"
        );
        assert!(sealer.open(&sealed, "req/bob").is_err());
        assert!(Sealer::new(&[8u8; 32]).open(&sealed, "req/alice").is_err());
        assert!(sealer.open("v1:AAAA", "req/alice").is_err());
        assert!(sealer.open("garbage", "req/alice").is_err());
    }
}
