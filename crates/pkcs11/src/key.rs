//! Key objects in the token: generation, adoption, listing, and RSA-OAEP decryption inside
//! the token.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use sealed_secrets_crypto::{Fingerprint, PublicKey};
use zeroize::Zeroizing;

use crate::attributes::{Described, Protection, describe};
use crate::error::Pkcs11Error;
use crate::reference::KeyRef;
use crate::token::Token;

/// Bytes of the random `CKA_ID` given to keys we generate.
const ID_LEN: usize = 16;
/// The public exponent of keys we generate (65537), as upstream's Go `rsa.GenerateKey`.
const PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// What `list_keys` reports for one key object.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Reference with label and ID as the object has them.
    pub reference: KeyRef,
    /// Fingerprint of its public key (as key hints and `keys list` show it).
    pub fingerprint: Fingerprint,
    /// Modulus size.
    pub bits: usize,
    /// Export protection.
    pub protection: Protection,
}

/// A private key held in the token, with its public half read out. Cheap to clone, `Send +
/// Sync`; every operation takes a pooled session.
#[derive(Clone)]
pub struct TokenKey {
    token: Token,
    info: KeyInfo,
    /// Token object handles are valid for all sessions of the application; cached so an
    /// unseal is one decryption, and looked up again if the token forgot it.
    handle: std::sync::Arc<Mutex<ObjectHandle>>,
    public: PublicKey,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("reference", &self.info.reference)
            .field("fingerprint", &self.info.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Reference (RFC 7512 URI) to store next to the certificate in the key Secret.
    pub fn reference(&self) -> &KeyRef {
        &self.info.reference
    }

    /// The public key, as sealing uses it.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Shorthand for `public_key().fingerprint()`.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.public.fingerprint()
    }

    /// Label, ID, size and export protection.
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    /// RSA-OAEP decryption inside the token, with SHA-256, MGF1-SHA-256 and `label` as the
    /// source data: what unwraps the session key of a sealed value (upstream §1.1). One
    /// decryption per call.
    ///
    /// Any failure that depends on the ciphertext or label is [`Pkcs11Error::Decrypt`]; a
    /// token that rejects these mechanism parameters gives
    /// [`Pkcs11Error::MechanismUnsupported`].
    pub fn decrypt_oaep(
        &self,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Pkcs11Error> {
        let first = self.decrypt_with(*self.cached_handle(), label, ciphertext);
        match first {
            Err(DecryptFailure::HandleGone) => {
                let handle = self.refind()?;
                match self.decrypt_with(handle, label, ciphertext) {
                    Ok(v) => Ok(v),
                    Err(DecryptFailure::HandleGone) => Err(self.missing()),
                    Err(DecryptFailure::Other(e)) => Err(e),
                }
            }
            Ok(v) => Ok(v),
            Err(DecryptFailure::Other(e)) => Err(e),
        }
    }

    fn decrypt_with(
        &self,
        handle: ObjectHandle,
        label: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> {
        let mechanism = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::data_specified(label),
        ));
        let mut gone = false;
        let result = self.token.with_session(
            |s| {
                s.decrypt(&mechanism, handle, ciphertext)
                    .map(Zeroizing::new)
            },
            |e| match e {
                // The session or token went away: nothing to do with the value.
                CkError::Pkcs11(
                    RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent
                    | RvError::UserNotLoggedIn,
                    _,
                ) => self.token.failure("decrypting", e),
                // Once C_Decrypt itself runs, every failure may depend on the ciphertext or
                // label (kryoptic reports a wrong label as CKR_DEVICE_ERROR): one uniform
                // error, so the answer is no oracle.
                CkError::Pkcs11(_, Function::Decrypt) => Pkcs11Error::Decrypt,
                CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _) => {
                    gone = true;
                    Pkcs11Error::Decrypt
                }
                // C_DecryptInit sees only the mechanism and the key.
                CkError::Pkcs11(
                    RvError::MechanismInvalid
                    | RvError::MechanismParamInvalid
                    | RvError::ArgumentsBad
                    | RvError::KeyFunctionNotPermitted
                    | RvError::KeyTypeInconsistent,
                    Function::DecryptInit,
                ) => Pkcs11Error::MechanismUnsupported {
                    token: self.token.label().to_owned(),
                    mechanism: "CKM_RSA_PKCS_OAEP with SHA-256, MGF1-SHA-256 and a label",
                    source: e,
                },
                e => self.token.failure("starting a decryption", e),
            },
        );
        match result {
            Ok(v) => Ok(v),
            Err(_) if gone => Err(DecryptFailure::HandleGone),
            Err(e) => Err(DecryptFailure::Other(e)),
        }
    }

    /// Proves, with two decryptions, that the token applies the OAEP label: a probe sealed
    /// under one label opens under it and not under another. A token that ignores labels
    /// (SoftHSM 2.6) would otherwise unseal any scope's value anywhere, without an error.
    fn check_label(&self) -> Result<(), Pkcs11Error> {
        const RIGHT: &[u8] = b"sealed-secrets-rs label check";
        const WRONG: &[u8] = b"sealed-secrets-rs label check, other scope";
        let ignored = || Pkcs11Error::OaepLabelIgnored {
            token: self.token.label().to_owned(),
            key: self.info.reference.described(),
        };
        let mut probe = Zeroizing::new([0u8; 32]);
        let encrypted = aws_lc_rs::rand::fill(probe.as_mut())
            .ok()
            .and_then(|()| PublicEncryptingKey::from_der(self.public.spki_der()).ok())
            .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
            .and_then(|k| {
                let mut out = vec![0u8; k.ciphertext_size()];
                let len = k
                    .encrypt(
                        &OAEP_SHA256_MGF1SHA256,
                        probe.as_ref(),
                        &mut out,
                        Some(RIGHT),
                    )
                    .ok()?
                    .len();
                out.truncate(len);
                Some(out)
            })
            .ok_or_else(ignored)?;
        match self.decrypt_oaep(RIGHT, &encrypted) {
            Ok(p) if p.as_slice() == probe.as_ref() => {}
            Ok(_) | Err(Pkcs11Error::Decrypt) => return Err(ignored()),
            Err(e) => return Err(e),
        }
        match self.decrypt_oaep(WRONG, &encrypted) {
            Err(Pkcs11Error::Decrypt) => Ok(()),
            Ok(_) => Err(ignored()),
            Err(e) => Err(e),
        }
    }

    /// Signs `message` with `CKM_SHA256_RSA_PKCS` (PKCS#1 v1.5, SHA-256) inside the token.
    pub(crate) fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let handle = *self.cached_handle();
        self.token.with_session(
            |s| s.sign(&Mechanism::Sha256RsaPkcs, handle, message),
            |e| match e {
                CkError::Pkcs11(RvError::MechanismInvalid | RvError::MechanismParamInvalid, _) => {
                    Pkcs11Error::MechanismUnsupported {
                        token: self.token.label().to_owned(),
                        mechanism: "CKM_SHA256_RSA_PKCS",
                        source: e,
                    }
                }
                e => self.token.failure("signing the certificate", e),
            },
        )
    }

    fn cached_handle(&self) -> std::sync::MutexGuard<'_, ObjectHandle> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refind(&self) -> Result<ObjectHandle, Pkcs11Error> {
        let handle = self.token.find_one(&self.info.reference)?;
        *self.cached_handle() = handle;
        Ok(handle)
    }

    fn missing(&self) -> Pkcs11Error {
        Pkcs11Error::KeyMissing {
            token: self.token.label().to_owned(),
            key: self.info.reference.described(),
        }
    }
}

enum DecryptFailure {
    HandleGone,
    Other(Pkcs11Error),
}

impl Token {
    /// Generates an RSA key pair inside the token: token objects, the private key
    /// `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, allowed to decrypt and sign (its own
    /// certificate) only. `label` becomes both objects' `CKA_LABEL` (the controller passes
    /// the key Secret's name); a random 16-byte `CKA_ID` ties them together.
    pub fn generate_key(&self, label: &str, bits: usize) -> Result<TokenKey, Pkcs11Error> {
        let mut id = [0u8; ID_LEN];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| Pkcs11Error::UnusableKey {
            token: self.label().to_owned(),
            key: format!("`{label}`"),
            reason: "no random ID could be drawn",
        })?;
        let modulus_bits = u64::try_from(bits).unwrap_or(u64::MAX);
        let common = [
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        let mut public = common.to_vec();
        public.extend([
            Attribute::Private(false),
            Attribute::Encrypt(true),
            Attribute::Verify(true),
            Attribute::Wrap(false),
            Attribute::ModulusBits(modulus_bits.into()),
            Attribute::PublicExponent(PUBLIC_EXPONENT.to_vec()),
        ]);
        let mut private = common.to_vec();
        private.extend([
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Sign(true),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ]);
        self.with_session(
            |s| s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private),
            |e| match e {
                CkError::Pkcs11(RvError::MechanismInvalid, _) => {
                    Pkcs11Error::MechanismUnsupported {
                        token: self.label().to_owned(),
                        mechanism: "CKM_RSA_PKCS_KEY_PAIR_GEN",
                        source: e,
                    }
                }
                e => self.failure("generating a key pair", e),
            },
        )?;
        self.find_key(&KeyRef {
            token: self.label().to_owned(),
            label: Some(label.to_owned()),
            id: Some(id.to_vec()),
        })
    }

    /// Finds (adopts) the one private RSA key matching `reference` (label and/or ID), e.g.
    /// one made with `pkcs11-tool --keypairgen`. Its public half is read from the private
    /// key object's modulus and exponent, so no public key object is needed.
    ///
    /// Errors: [`Pkcs11Error::KeyMissing`], [`Pkcs11Error::KeyAmbiguous`],
    /// [`Pkcs11Error::UnusableKey`].
    pub fn find_key(&self, reference: &KeyRef) -> Result<TokenKey, Pkcs11Error> {
        if reference.token != self.label() {
            return Err(Pkcs11Error::KeyMissing {
                token: self.label().to_owned(),
                key: format!(
                    "{} (it names token `{}`)",
                    reference.described(),
                    reference.token
                ),
            });
        }
        let handle = self.find_one(reference)?;
        let (info, public) = self.with_session(
            |s| Ok(describe(s, handle)),
            |e| self.failure("reading key", e),
        )?;
        let (info, public) = self.checked(info, public)?;
        let key = TokenKey {
            token: self.clone(),
            info,
            handle: std::sync::Arc::new(Mutex::new(handle)),
            public,
        };
        key.check_label()?;
        Ok(key)
    }

    /// Every private RSA key object in the token (ours and adopted ones). Objects that are
    /// not usable RSA keys are skipped.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, Pkcs11Error> {
        let all = KeyRef {
            token: self.label().to_owned(),
            label: None,
            id: None,
        };
        let described = self.with_session(
            |s| {
                let handles = s.find_objects(&all.template())?;
                Ok(handles
                    .into_iter()
                    .map(|h| describe(s, h))
                    .collect::<Vec<_>>())
            },
            |e| self.failure("listing keys", e),
        )?;
        Ok(described
            .into_iter()
            .filter_map(|(info, public)| self.checked(info, public).ok())
            .map(|(info, _)| info)
            .collect())
    }

    pub(crate) fn find_one(&self, reference: &KeyRef) -> Result<ObjectHandle, Pkcs11Error> {
        let handles = self.with_session(
            |s| s.find_objects(&reference.template()),
            |e| self.failure("looking up a key", e),
        )?;
        match handles.as_slice() {
            [one] => Ok(*one),
            [] => Err(Pkcs11Error::KeyMissing {
                token: self.label().to_owned(),
                key: reference.described(),
            }),
            many => Err(Pkcs11Error::KeyAmbiguous {
                token: self.label().to_owned(),
                key: reference.described(),
                count: many.len(),
            }),
        }
    }

    fn checked(
        &self,
        info: Described,
        public: Option<PublicKey>,
    ) -> Result<(KeyInfo, PublicKey), Pkcs11Error> {
        let unusable = |reason| Pkcs11Error::UnusableKey {
            token: self.label().to_owned(),
            key: info.reference_described(self.label()),
            reason,
        };
        let public = public.ok_or_else(|| {
            unusable("not an RSA key of 2048 to 8192 bits with a readable modulus and exponent")
        })?;
        if !info.decrypt {
            return Err(unusable("CKA_DECRYPT is false"));
        }
        let info = KeyInfo {
            reference: KeyRef {
                token: self.label().to_owned(),
                label: info.label,
                id: info.id,
            },
            fingerprint: public.fingerprint().clone(),
            bits: public.bits(),
            protection: info.protection,
        };
        Ok((info, public))
    }
}
