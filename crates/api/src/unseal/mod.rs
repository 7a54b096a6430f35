//! Unsealing: what the controller does to a SealedSecret (§2.4, §2.5), and the
//! template-free [`verify`] and [`decrypt_items`] the verify and rotate paths must use: running
//! attacker-supplied templates there made upstream a decryption oracle (§9.3).
//!
//! - `decrypt`: the values alone, no template ([`decrypt_items`], [`verify`]);
//! - `render`: the Secret, templates rendered under one budget ([`unseal`]).

mod decrypt;
mod render;

pub use decrypt::{DecryptedItems, UnsealOptions, decrypt_items, sealing_key_hints, verify};
pub use render::{
    MAX_RENDER_TIME_PER_OBJECT, MAX_TEMPLATE_ITEMS, TEMPLATE_LIMITS, UnsealedSecret,
    owner_reference, unseal,
};
