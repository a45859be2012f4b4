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
pub fn load<T, F>(state: RwSignal<Load<T>>, fut: F)
where
    T: Send + Sync + 'static,
    F: Future<Output = ApiResult<T>> + 'static,
{
    let session = use_session();
    leptos::task::spawn_local(async move {
        match fut.await {
            Ok(v) => state.set(Load::Ready(v)),
            Err(e) if e.status == 401 => {
                session.sign_out();
                session.error.set(Some(e.to_string()));
            }
            Err(e) => state.set(Load::Failed(e.to_string())),
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
