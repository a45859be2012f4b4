//! Pieces shared by the pages: the signed-in identity, status badges, loading and error states.

use std::future::Future;

use leptos::prelude::*;

use crate::api::ApiResult;
use crate::format::status_label;
use crate::session::use_session;

/// The state of one fetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(String),
}

/// Runs `fut` and puts its outcome into `state`. A 401 signs the user out (the token expired).
/// An outcome equal to what is shown changes nothing, so a page that polls is not redrawn (and
/// keeps focus, selections and revealed secrets) while nothing moves.
pub fn load<T, F>(state: RwSignal<Load<T>>, fut: F)
where
    T: PartialEq + Send + Sync + 'static,
    F: Future<Output = ApiResult<T>> + 'static,
{
    let session = use_session();
    leptos::task::spawn_local(async move {
        let next = match fut.await {
            Ok(v) => Load::Ready(v),
            Err(e) if e.status == 401 => {
                session.sign_out();
                session.error.set(Some(e.to_string()));
                return;
            }
            Err(e) => Load::Failed(e.to_string()),
        };
        // The page may have been left while the call ran: its signal is gone then.
        if state.try_with_untracked(|current| *current != next) == Some(true) {
            state.try_set(next);
        }
    });
}

#[component]
pub fn Identity() -> impl IntoView {
    let session = use_session();
    move || {
        session.me.get().map(|me| {
            let groups = if me.groups.is_empty() {
                "no groups".to_owned()
            } else {
                me.groups.join(", ")
            };
            view! {
                <span class="who">
                    "Signed in as " <strong>{me.name.clone().unwrap_or_else(|| me.id.clone())}</strong>
                    " (" {me.id.clone()} " · " {groups} ")"
                    <button class="link" on:click=move |_| session.sign_out()>"Sign out"</button>
                </span>
            }
        })
    }
}

#[component]
pub fn Status(#[prop(into)] status: String) -> impl IntoView {
    let (label, class) = status_label(&status);
    view! { <span class=format!("badge {class}") data-status=status>{label}</span> }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}

#[component]
pub fn ErrorBox(#[prop(into)] message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

/// Copies `text` to the clipboard and says whether it worked. Browsers offer the clipboard only on
/// secure origins (HTTPS or localhost); elsewhere the button says to copy by hand.
#[component]
pub fn CopyButton(#[prop(into)] text: String, #[prop(into)] label: String) -> impl IntoView {
    let state: RwSignal<Option<bool>> = RwSignal::new(None);
    let copy = move |_| {
        let text = text.clone();
        leptos::task::spawn_local(async move {
            state.set(Some(copy_to_clipboard(&text).await));
        });
    };
    view! {
        <button type="button" class="secondary copy-button" aria-label=label on:click=copy>
            {move || match state.get() {
                None => "Copy",
                Some(true) => "Copied",
                Some(false) => "Select and copy by hand",
            }}
        </button>
    }
}

async fn copy_to_clipboard(text: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let navigator = window.navigator();
    let available = js_sys::Reflect::get(&navigator, &"clipboard".into())
        .map(|c| !c.is_undefined() && !c.is_null())
        .unwrap_or(false);
    if !available {
        return false;
    }
    let promise = navigator.clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}
