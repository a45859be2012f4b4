//! The Gatekeeper single-page application: the whole job in a browser, talking only to the REST API.

pub mod api;
pub mod components;
pub mod format;
pub mod pages;
pub mod session;

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::session::Session;

/// The application shell: session, navigation, routes. Nothing but the sign-in page shows until a
/// token is set.
#[component]
pub fn App() -> impl IntoView {
    let session = Session::restore();
    provide_context(session);
    view! {
        <Router>
            <header class="top">
                <span class="brand">"Gatekeeper"</span>
                <Show when=move || session.signed_in()>
                    <nav>
                        <A href="/">"Search"</A>
                        <A href="/requests">"My requests"</A>
                        <A href="/approvals">"Approvals"</A>
                        <A href="/history">"History"</A>
                    </nav>
                </Show>
                <components::Identity/>
            </header>
            <main>
                <Show when=move || session.signed_in() fallback=|| view! { <pages::signin::SignIn/> }>
                    <Routes fallback=|| view! { <p class="empty">"No such page."</p> }>
                        <Route path=path!("/") view=pages::search::SearchPage/>
                        <Route path=path!("/requests") view=pages::requests::MyRequests/>
                        <Route path=path!("/requests/:id") view=pages::detail::RequestPage/>
                        <Route path=path!("/approvals") view=pages::approvals::Approvals/>
                        <Route path=path!("/history") view=pages::history::History/>
                    </Routes>
                </Show>
            </main>
        </Router>
    }
}
