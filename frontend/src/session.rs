//! Who is signed in: the bearer token (kept in session storage, so it ends with the tab) and the
//! caller as `/api/v1/me` describes them. A seam for OIDC sign-in later: whatever obtains a token
//! calls [`Session::sign_in`].

use leptos::prelude::*;

use crate::api::{self, Me};

const KEY: &str = "gatekeeper.token";

#[derive(Clone, Copy)]
pub struct Session {
    pub token: RwSignal<Option<String>>,
    pub me: RwSignal<Option<Me>>,
    pub error: RwSignal<Option<String>>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

impl Session {
    pub fn restore() -> Self {
        let session = Session {
            token: RwSignal::new(None),
            me: RwSignal::new(None),
            error: RwSignal::new(None),
        };
        CURRENT.with(|c| c.set(Some(session)));
        if let Some(token) = storage().and_then(|s| s.get_item(KEY).ok().flatten()) {
            session.sign_in(token);
        }
        session
    }

    pub fn signed_in(&self) -> bool {
        self.token.get().is_some() && self.me.get().is_some()
    }

    /// Checks the token against the API, then keeps it.
    pub fn sign_in(&self, token: String) {
        let this = *self;
        let token = token.trim().to_owned();
        leptos::task::spawn_local(async move {
            match api::get::<Me>("/api/v1/me", &token).await {
                Ok(me) => {
                    if let Some(s) = storage() {
                        let _ = s.set_item(KEY, &token);
                    }
                    this.error.set(None);
                    this.token.set(Some(token));
                    this.me.set(Some(me));
                }
                Err(e) => {
                    this.sign_out();
                    this.error.set(Some(e.to_string()));
                }
            }
        });
    }

    pub fn sign_out(&self) {
        if let Some(s) = storage() {
            let _ = s.remove_item(KEY);
        }
        self.token.set(None);
        self.me.set(None);
    }

    /// The token for a call; empty when signed out (the API then answers 401).
    pub fn bearer(&self) -> String {
        self.token.get_untracked().unwrap_or_default()
    }
}

thread_local! {
    /// The one session of the page, for code that runs outside the component tree (callbacks of
    /// finished fetches, timers), where no reactive context can be looked up.
    static CURRENT: std::cell::Cell<Option<Session>> = const { std::cell::Cell::new(None) };
}

/// The session of the page: from the component tree's context, or — in callbacks that run outside it —
/// the one the application made at start.
pub fn use_session() -> Session {
    use_context::<Session>()
        .or_else(|| CURRENT.with(|c| c.get()))
        .expect("the application creates the session before anything uses it")
}
