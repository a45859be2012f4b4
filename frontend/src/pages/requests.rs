//! My requests: what I asked for and what grants me access, refreshed without a reload, with a
//! countdown to the end of access.

use std::time::Duration;

use chrono::Utc;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{self, CommentBody, GrantBrief, RequestDetail, RequestPage, RequestSummary, q};
use crate::components::{ErrorBox, Load, Loading, Status, load};
use crate::format::{countdown, grant_tally, human_minutes, when};
use crate::session::use_session;

/// A clock signal that ticks every second while the page is shown.
pub fn ticking_now() -> RwSignal<chrono::DateTime<Utc>> {
    let now = RwSignal::new(Utc::now());
    if let Ok(handle) =
        set_interval_with_handle(move || now.set(Utc::now()), Duration::from_secs(1))
    {
        on_cleanup(move || handle.clear());
    }
    now
}

/// Calls `f` every `every` while the page is shown.
pub fn every(every: Duration, f: impl Fn() + 'static) {
    if let Ok(handle) = set_interval_with_handle(f, every) {
        on_cleanup(move || handle.clear());
    }
}

#[component]
pub fn MyRequests() -> impl IntoView {
    let session = use_session();
    let page: RwSignal<Load<RequestPage>> = RwSignal::new(Load::Loading);
    let fetch = move || {
        let me = session.me.get_untracked().map(|m| m.id).unwrap_or_default();
        let path = format!("/api/v1/requests?person={}&limit=100", q(&me));
        let token = session.bearer();
        load(page, async move { api::get(&path, &token).await });
    };
    fetch();
    every(Duration::from_secs(5), fetch);
    let now = ticking_now();
    view! {
        <section class="card">
            <h1>"My requests"</h1>
            {move || match page.get() {
                Load::Loading => view! { <Loading/> }.into_any(),
                Load::Failed(e) => view! { <ErrorBox message=e/> }.into_any(),
                Load::Ready(p) if p.items.is_empty() => view! { <p class="empty">"No requests yet. Find instances on the Search page."</p> }.into_any(),
                Load::Ready(p) => view! { <RequestTable items=p.items now=now on_change=Callback::new(move |_| fetch())/> }.into_any(),
            }}
        </section>
    }
}

#[component]
pub fn RequestTable(
    items: Vec<RequestSummary>,
    now: RwSignal<chrono::DateTime<Utc>>,
    #[prop(optional)] on_change: Option<Callback<()>>,
) -> impl IntoView {
    let session = use_session();
    let me = session.me.get_untracked().map(|m| m.id).unwrap_or_default();
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    view! {
        {move || error.get().map(|e| view! { <ErrorBox message=e/> })}
        <table class="grid requests">
            <thead><tr><th>"Status"</th><th>"Environment"</th><th>"Requested"</th><th>"By"</th>
                <th>"For"</th><th>"Access per person × instance"</th><th>"Duration"</th><th>"Ends"</th><th>"Reason"</th><th></th></tr></thead>
            <tbody>
            {items.into_iter().map(|r| {
                let id = r.id.clone();
                let cancellable = r.requester == me && matches!(r.status.as_str(), "pending_approval" | "approved");
                let expires = r.expires_at;
                let status = r.status.clone();
                let cancel = move |_| {
                    let token = session.bearer();
                    let id = id.clone();
                    leptos::task::spawn_local(async move {
                        match api::post::<RequestDetail>(&format!("/api/v1/requests/{id}/cancel"), &token, &CommentBody::default()).await {
                            Ok(_) => { if let Some(cb) = on_change { cb.run(()) } }
                            Err(e) => error.set(Some(e.to_string())),
                        }
                    });
                };
                view! {
                    <tr data-request=r.id.clone()>
                        <td><Status status=r.status.clone()/></td>
                        <td>{r.environment.clone()}</td>
                        <td>{when(&r.created_at)}</td>
                        <td>{r.requester_name.clone().unwrap_or(r.requester.clone())}</td>
                        <td>{r.subject_ids.join(", ")}</td>
                        <td class="access">{if matches!(r.status.as_str(), "rejected" | "canceled") {
                            // Nothing was ever granted: the request's own status says it all.
                            view! { <span class="muted">"none granted"</span> }.into_any()
                        } else {
                            view! { <GrantStatuses grants=r.grant_statuses.clone()/> }.into_any()
                        }}</td>
                        <td>{human_minutes(r.duration_minutes)}</td>
                        <td class="mono countdown">{move || match expires {
                            Some(end) if status == "active" => countdown(now.get(), end),
                            Some(end) => when(&end),
                            None => "—".into(),
                        }}</td>
                        <td class="reason">{r.reason.clone()}</td>
                        <td class="actions">
                            <A href=format!("/requests/{}", r.id)>"Open"</A>
                            {cancellable.then(|| view! { <button class="link danger" on:click=cancel>"Cancel"</button> })}
                        </td>
                    </tr>
                }
            }).collect_view()}
            </tbody>
        </table>
    }
}

/// Each subject's access to each instance; requests with many grants show counts per status.
#[component]
fn GrantStatuses(grants: Vec<GrantBrief>) -> impl IntoView {
    if grants.len() <= 4 {
        view! {
            <ul class="grants">{grants.into_iter().map(|g| {
                let key = format!("{}@{}", g.subject, g.instance_id);
                view! {
                    <li data-grant=key>
                        <Status status=g.status/>" "{g.subject}" · "<span class="mono">{g.instance_id}</span>
                    </li>
                }
            }).collect_view()}</ul>
        }
        .into_any()
    } else {
        let tally = grant_tally(grants.iter().map(|g| g.status.as_str()));
        view! {
            <ul class="grants tally">{tally.into_iter().map(|(status, n)| view! {
                <li>{n}" × "<Status status=status/></li>
            }).collect_view()}</ul>
        }
        .into_any()
    }
}
