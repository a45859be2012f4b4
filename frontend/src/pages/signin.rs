//! Sign in: paste a token (`gatekeeper token …` prints one) or pick a demo identity when the server
//! offers them.

use leptos::prelude::*;

use crate::api::{self, DemoIdentity};
use crate::components::{ErrorBox, Load, load};
use crate::session::use_session;

#[component]
pub fn SignIn() -> impl IntoView {
    let session = use_session();
    let token = RwSignal::new(String::new());
    let demo: RwSignal<Load<Vec<DemoIdentity>>> = RwSignal::new(Load::Loading);
    load(demo, api::get_anonymous("/api/v1/demo/identities"));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = token.get();
        if !t.trim().is_empty() {
            session.sign_in(t);
        }
    };
    view! {
        <section class="card narrow">
            <h1>"Sign in"</h1>
            {move || session.error.get().map(|e| view! { <ErrorBox message=e/> })}
            <form on:submit=submit>
                <label for="token">"Bearer token"</label>
                <textarea id="token" name="token" rows="4" placeholder="eyJ…"
                    prop:value=move || token.get()
                    on:input=move |ev| token.set(event_target_value(&ev))></textarea>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
            <p class="hint">"Get one with " <code>"gatekeeper token --sub you --groups your-team"</code>
                ". It is kept for this browser tab only."</p>
            {move || match demo.get() {
                Load::Ready(ids) if !ids.is_empty() => Some(view! {
                    <h2>"Demo identities"</h2>
                    <ul class="demo">
                        {ids.into_iter().map(|id| {
                            let t = id.token.clone();
                            view! {
                                <li><button class="secondary" data-sub=id.sub.clone()
                                    on:click=move |_| session.sign_in(t.clone())>
                                    {id.name.clone()} " (" {id.sub.clone()} ")"
                                </button>
                                <span class="muted">{id.groups.join(", ")}</span></li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()),
                _ => None,
            }}
        </section>
    }
}
