//! Opening a token: the process-wide module context, slot lookup by token label, login with a
//! PIN read from a file, and a small pool of logged-in sessions shared by threads.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;

/// Where the token is and how to log in. Built once from the controller's settings.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Path of the PKCS#11 module (shared library).
    pub module: PathBuf,
    /// Label of the token (`CKA_LABEL` of the token, as `pkcs11-tool --list-slots` shows it).
    pub token_label: String,
    /// File holding the user PIN (a mounted Secret). Trailing newlines are ignored. PINs are
    /// never taken from flags or environment values, which `ps` and pod specs show.
    pub pin_file: PathBuf,
    /// Sessions kept open for reuse; more are opened under load and closed after use.
    pub max_idle_sessions: usize,
}

impl TokenConfig {
    /// A configuration with the default pool size (4 idle sessions).
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin_file: impl Into<PathBuf>,
    ) -> TokenConfig {
        TokenConfig {
            module: module.into(),
            token_label: token_label.into(),
            pin_file: pin_file.into(),
            max_idle_sessions: 4,
        }
    }
}

/// What a token's operations cost so far, for metrics (calls, errors and latency per key
/// backend). One operation is one session use: an unseal's decryption, a key lookup, a key
/// generation, a signature.
#[derive(Debug, Default)]
pub struct TokenStats {
    operations: AtomicU64,
    errors: AtomicU64,
    busy_micros: AtomicU64,
}

impl TokenStats {
    /// Operations performed, failed ones included.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// Operations that failed (a refused decryption included).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Time spent in the token, summed over operations (concurrent ones add up).
    pub fn busy(&self) -> Duration {
        Duration::from_micros(self.busy_micros.load(Ordering::Relaxed))
    }

    fn record(&self, started: Instant, failed: bool) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One context per module path and process: PKCS#11 allows `C_Initialize` once per process,
/// and finalising one handle would pull the library from under every other. Contexts are
/// never finalised (the process ends first).
static MODULES: LazyLock<Mutex<HashMap<PathBuf, Pkcs11>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn module_context(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let mut modules = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let err = |source| Pkcs11Error::Module {
        path: path.to_owned(),
        source,
    };
    let ctx = Pkcs11::new(path).map_err(err)?;
    // The module may use OS locking: sessions are used from several threads.
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e)),
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// A logged-in token. Cheap to clone; every clone shares one session pool. `Send + Sync`:
/// each operation takes a session from the pool for its duration, so threads never share a
/// session (PKCS#11 sessions are not thread-safe).
#[derive(Clone)]
pub struct Token {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    pin_file: PathBuf,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
    stats: TokenStats,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.inner.label)
            .field("slot", &self.inner.slot.id())
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the slot whose token has `token_label`, reads the PIN file and
    /// logs in (one session is opened and kept).
    ///
    /// Errors: [`Pkcs11Error::Module`], [`Pkcs11Error::TokenAbsent`],
    /// [`Pkcs11Error::PinFile`], [`Pkcs11Error::WrongPin`], [`Pkcs11Error::PinLocked`].
    pub fn open(config: &TokenConfig) -> Result<Token, Pkcs11Error> {
        let ctx = module_context(&config.module)?;
        let slot = find_slot(&ctx, &config.token_label)?;
        let pin = read_pin(&config.pin_file)?;
        let token = Token {
            inner: Arc::new(Inner {
                ctx,
                slot,
                label: config.token_label.clone(),
                pin,
                pin_file: config.pin_file.clone(),
                idle: Mutex::new(Vec::new()),
                max_idle: config.max_idle_sessions.max(1),
                stats: TokenStats::default(),
            }),
        };
        // Log in now, so a wrong PIN fails at start-up rather than at the first unseal.
        let session = token.new_session()?;
        token.release(session);
        Ok(token)
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Operation counts and time spent, shared by every clone of this token.
    pub fn stats(&self) -> &TokenStats {
        &self.inner.stats
    }

    /// Runs `op` on a logged-in session of this token, taken from the pool (or opened) for
    /// the call. A session whose failure says it is gone is dropped rather than reused.
    pub(crate) fn with_session<T>(
        &self,
        op: impl FnOnce(&Session) -> Result<T, CkError>,
        on_error: impl FnOnce(CkError) -> Pkcs11Error,
    ) -> Result<T, Pkcs11Error> {
        let session = self.take_session()?;
        let started = Instant::now();
        let result = op(&session);
        self.inner.stats.record(started, result.is_err());
        match result {
            Ok(v) => {
                self.release(session);
                Ok(v)
            }
            Err(e) => {
                if !session_is_dead(&e) {
                    self.release(session);
                }
                Err(on_error(e))
            }
        }
    }

    /// The error for a failed call, with the token named.
    pub(crate) fn failure(&self, operation: &'static str, source: CkError) -> Pkcs11Error {
        Pkcs11Error::Token {
            token: self.inner.label.clone(),
            operation,
            source,
        }
    }

    fn take_session(&self) -> Result<Session, Pkcs11Error> {
        let pooled = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(s) => Ok(s),
            None => self.new_session(),
        }
    }

    fn release(&self, session: Session) {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.inner.max_idle {
            idle.push(session);
        }
        // Otherwise dropped here, which closes it.
    }

    fn new_session(&self) -> Result<Session, Pkcs11Error> {
        let inner = &self.inner;
        let session = inner
            .ctx
            .open_rw_session(inner.slot)
            .map_err(|e| self.failure("opening a session", e))?;
        // Login state belongs to the application, not the session: once one session logged
        // in, every session is, and the token answers "already logged in".
        match session.login(UserType::User, Some(&inner.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
                Err(Pkcs11Error::WrongPin {
                    token: inner.label.clone(),
                    pin_file: inner.pin_file.clone(),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
                token: inner.label.clone(),
            }),
            Err(e) => Err(self.failure("logging in", e)),
        }
    }
}

fn session_is_dead(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn,
            _
        )
    )
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, Pkcs11Error> {
    let absent = |present: Vec<String>| Pkcs11Error::TokenAbsent {
        label: label.to_owned(),
        present: if present.is_empty() {
            "none".to_owned()
        } else {
            present.join(", ")
        },
    };
    let slots = ctx.get_slots_with_token().map_err(|e| Pkcs11Error::Token {
        token: label.to_owned(),
        operation: "listing slots",
        source: e,
    })?;
    let mut present = Vec::new();
    for slot in slots {
        // A slot that fails to answer is skipped: another may hold the token.
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        // Token labels are blank-padded to 32 bytes; cryptoki trims them.
        if info.label() == label {
            return Ok(slot);
        }
        present.push(format!("`{}`", info.label()));
    }
    Err(absent(present))
}

fn read_pin(path: &Path) -> Result<AuthPin, Pkcs11Error> {
    let err = |source| Pkcs11Error::PinFile {
        path: path.to_owned(),
        source,
    };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(err)?);
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the PIN file is empty",
        )));
    }
    Ok(AuthPin::from(pin))
}
