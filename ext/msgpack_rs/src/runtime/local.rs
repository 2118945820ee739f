//! Ractor-local storage behind one typed helper.
//!
//! Per-Ractor state (the reusable packer and decoder of `MessagePack.pack`
//! and `unpack`, the map-key cache, the `compact!` registry, the Ractor's
//! id) lives in Ruby's Ractor-local storage, under keys made once at load
//! time: no process-global mutable state, and the VM marks what is stored.
use magnus::{
    rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj, TryConvert, TypedData, Value,
};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// A Ractor-local storage key (see the module docs).
pub struct RactorLocal {
    key: OnceLock<usize>,
}

impl RactorLocal {
    pub const fn new() -> Self {
        RactorLocal {
            key: OnceLock::new(),
        }
    }

    /// Makes the key. At load time only, while only the main Ractor runs.
    pub fn init(&self) {
        self.key.get_or_init(|| {
            // SAFETY: plain C API call at load time.
            unsafe { rb_sys::rb_ractor_local_storage_value_newkey() as usize }
        });
    }

    /// `Some` once [`RactorLocal::init`] ran.
    #[inline]
    pub fn initialized(&self) -> Option<()> {
        self.key().map(|_| ())
    }

    #[inline(always)]
    fn key(&self) -> Option<rb_sys::rb_ractor_local_key_t> {
        self.key.get().map(|&k| k as rb_sys::rb_ractor_local_key_t)
    }

    /// What the current Ractor stores here (nil when nothing, or before
    /// `init`). A lookup only: it allocates nothing, so GC callbacks may
    /// call it.
    #[inline(always)]
    pub fn get(&self) -> VALUE {
        match self.key() {
            // SAFETY: a key made by `init`; a lookup only.
            Some(key) => unsafe { rb_sys::rb_ractor_local_storage_value(key) },
            None => rb_sys::special_consts::Qnil as VALUE,
        }
    }

    /// Stores `v` for the current Ractor (the VM marks it from now on).
    pub fn set(&self, v: VALUE) {
        if let Some(key) = self.key() {
            // SAFETY: a key made by `init`; `v` is a live object or an
            // immediate, which the VM keeps alive from now on.
            unsafe { rb_sys::rb_ractor_local_storage_value_set(key, v) };
        }
    }

    /// The `T` object stored here, if one is.
    #[inline]
    pub fn object<T: TypedData>(&self) -> Option<Obj<T>> {
        let stored = self.get();
        // SAFETY: a live object (or nil) from Ractor-local storage.
        Obj::<T>::try_convert(unsafe { Value::from_raw(stored) }).ok()
    }

    /// The `T` object stored here, made by `make` and stored first if there
    /// is none (`None` only before `init`).
    #[inline]
    pub fn object_or_init<T: TypedData>(&self, make: impl FnOnce() -> Obj<T>) -> Option<Obj<T>> {
        if let Some(o) = self.object::<T>() {
            return Some(o);
        }
        self.key()?;
        let o = make();
        self.set(o.as_raw());
        Some(o)
    }
}
