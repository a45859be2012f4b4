//! History: finished requests, filtered by environment, status, person and time.

use leptos::prelude::*;

use crate::api::{self, RequestPage, q};
use crate::components::{ErrorBox, Load, Loading, load};
use crate::pages::requests::{RequestTable, ticking_now};
use crate::session::use_session;

#[component]
pub fn History() -> impl IntoView {
    let session = use_session();
    let environment = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let person = RwSignal::new(String::new());
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let page: RwSignal<Load<RequestPage>> = RwSignal::new(Load::Loading);
    let fetch = move || {
        let mut query = vec!["limit=100".to_owned(), "finished=true".to_owned()];
        for (name, value) in [
            ("environment", environment.get_untracked()),
            ("status", status.get_untracked()),
            ("person", person.get_untracked()),
        ] {
            if !value.trim().is_empty() {
                query.push(format!("{name}={}", q(value.trim())));
            }
        }
        // Dates from the date inputs, as whole UTC days.
        if !from.get_untracked().is_empty() {
            query.push(format!(
                "from={}",
                q(&format!("{}T00:00:00Z", from.get_untracked()))
            ));
        }
        if !to.get_untracked().is_empty() {
            query.push(format!(
                "to={}",
                q(&format!("{}T23:59:59Z", to.get_untracked()))
            ));
        }
        page.set(Load::Loading);
        let path = format!("/api/v1/requests?{}", query.join("&"));
        let token = session.bearer();
        load(page, async move { api::get(&path, &token).await });
    };
    fetch();
    let now = ticking_now();
    let environments = move || session.me.get().map(|m| m.environments).unwrap_or_default();
    view! {
        <section class="card">
            <h1>"History"</h1>
            <form class="filters" on:submit=move |ev| { ev.prevent_default(); fetch(); }>
                <label>"Environment"
                    <select name="environment" on:change=move |ev| environment.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        {move || environments().into_iter().map(|e| view! { <option value=e.name.clone()>{e.name.clone()}</option> }).collect_view()}
                    </select></label>
                <label>"Status"
                    <select name="status" on:change=move |ev| status.set(event_target_value(&ev))>
                        <option value="">"any"</option>
                        {["expired", "revoked", "rejected", "canceled", "failed"].into_iter()
                            .map(|s| view! { <option value=s>{s}</option> }).collect_view()}
                    </select></label>
                <label>"Person" <input name="person" placeholder="user id"
                    prop:value=move || person.get() on:input=move |ev| person.set(event_target_value(&ev))/></label>
                <label>"From" <input type="date" name="from" on:input=move |ev| from.set(event_target_value(&ev))/></label>
                <label>"To" <input type="date" name="to" on:input=move |ev| to.set(event_target_value(&ev))/></label>
                <button type="submit" class="primary">"Filter"</button>
            </form>
            {move || match page.get() {
                Load::Loading => view! { <Loading/> }.into_any(),
                Load::Failed(e) => view! { <ErrorBox message=e/> }.into_any(),
                Load::Ready(p) if p.items.is_empty() => view! { <p class="empty">"Nothing matches."</p> }.into_any(),
                Load::Ready(p) => view! { <RequestTable items=p.items now=now/> }.into_any(),
            }}
        </section>
    }
}
